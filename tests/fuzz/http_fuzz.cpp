// libFuzzer target: HTTP request handling (path, query, body, method,
// content type) through http_api::serve (the
// server's own parsing is Beast's). The actors behind it answer every
// request with an error, so what is exercised is parsing, validation and
// routing; every answer must be a status with a JSON body, except the
// dashboard's own files (GET /ui/...), whose body is what their type says.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include "messages/errors.hpp"
#include "api/http_api.hpp"
#include "transport/http_server.hpp"

namespace {

struct api_under_test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<cyme::http_api> api;

  api_under_test() {
    sys = std::make_unique<caf::actor_system>(cfg);
    // One actor that refuses everything stands in for the supervisor, the
    // store and the bus.
    // Spawned with an argument: CAF 0.17 dereferences a null argument
    // tuple for argument-less function actors, which UBSan reports.
    auto refuser = sys->spawn(
      [](caf::event_based_actor* self, int) {
        self->set_default_handler(
          [](caf::scheduled_actor*,
             caf::message_view&) -> caf::result<caf::message> {
            return caf::make_error(cyme::cyme_errc::store_failure, "fuzz");
          });
      },
      0);
    cyme::http_parts parts;
    parts.sys = sys.get();
    parts.sup = caf::actor_cast<cyme::supervisor_actor>(refuser);
    parts.store = caf::actor_cast<cyme::model_admin_actor>(refuser);
    parts.apps = std::make_shared<cyme::app_directory>();
    parts.bus = caf::actor_cast<cyme::control_bus_actor>(refuser);
    parts.default_broker = "127.0.0.1:9";
    parts.branch_id = "fuzz";
    cyme::http_settings settings;
    settings.request_timeout = std::chrono::seconds{5};
    settings.token = "t";
    api = std::make_unique<cyme::http_api>(parts, settings);
  }
};

std::string take_line(std::string& rest) {
  auto nl = rest.find('\n');
  auto line = rest.substr(0, nl);
  rest = nl == std::string::npos ? std::string{} : rest.substr(nl + 1);
  return line;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Never destroyed: the actor system must outlive libFuzzer's exit path.
  static auto& t = *new api_under_test;
  std::string rest{reinterpret_cast<const char*>(data), size};
  static const char* methods[] = {"GET", "PUT", "POST", "DELETE"};
  cyme::http::request req;
  auto head = take_line(rest);
  req.method = methods[head.empty() ? 0 : static_cast<unsigned char>(head[0]) % 4];
  if (head.size() > 1 && head[1] == 'a')
    req.headers["authorization"] = "Bearer t";
  req.path = take_line(rest);
  auto query = take_line(rest);
  size_t pos = 0;
  while (pos < query.size()) {
    auto amp = query.find('&', pos);
    auto item = query.substr(pos, amp == std::string::npos ? std::string::npos
                                                             : amp - pos);
    auto eq = item.find('=');
    req.params.emplace(item.substr(0, eq),
                       eq == std::string::npos ? "" : item.substr(eq + 1));
    if (amp == std::string::npos)
      break;
    pos = amp + 1;
  }
  auto type = take_line(rest);
  req.headers["content-type"] = type.empty() ? "application/json" : type;
  req.body = rest;
  auto res = t.api->serve(req);
  if (res.status < 200 || res.status > 599)
    __builtin_trap();
  if (res.content_type == "application/json") {
    if (nlohmann::json::parse(res.body, nullptr, false).is_discarded())
      __builtin_trap();
  } else if (res.status != 200 || req.method != "GET"
             || req.path.find("ui") == std::string::npos || res.body.empty()) {
    __builtin_trap();
  }
  return 0;
}
