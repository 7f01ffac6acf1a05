#include "api/logs.hpp"

#include <memory>

#include "transport/log_tail.hpp"

namespace cyme::api {

namespace {

/// How often a followed log is looked at.
constexpr auto follow_interval = std::chrono::milliseconds{200};

/// Lines shown when `tail` is not given.
constexpr uint32_t default_tail = 100;

void poll_log(const http::exchange_ptr& ex,
              const std::shared_ptr<log_follower>& follower) {
  ex->after(follow_interval, [ex, follower] {
    auto text = follower->read_new();
    if (!text.empty() && !ex->send(std::move(text)))
      return; // gone or cut off
    poll_log(ex, follower);
  });
}

} // namespace

bool serve_logs(context& ctx, const http::exchange_ptr& ex,
                const instance_spec& spec, const params& p,
                http::response& res) {
  for (auto& [key, value] : ex->req().params)
    if (key != "tail" && key != "follow" && key != "local")
      fail(400, "unknown parameter '" + key.substr(0, 64)
                  + "'; logs/ takes tail and follow");
  uint32_t tail = default_tail;
  if (p.has("tail")) {
    auto v = p.text("tail").value_or("");
    if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos
        || std::stoul(v) < 1 || std::stoul(v) > max_tail_lines)
      fail(400, "'tail' must be a whole number from 1 to "
                  + std::to_string(max_tail_lines));
    tail = static_cast<uint32_t>(std::stoul(v));
  }
  auto follow_text = p.text("follow").value_or("0");
  if (follow_text != "0" && follow_text != "1" && follow_text != "true"
      && follow_text != "false")
    fail(400, "'follow' is 1 or 0");
  bool follow = follow_text == "1" || follow_text == "true";
  std::filesystem::path folder = ctx.parts.instances_root;
  folder /= spec.name;
  // Opened first: a line written while the tail is read is not lost.
  std::shared_ptr<log_follower> follower;
  if (follow) {
    auto opened = log_follower::open(folder);
    if (!opened)
      fail(opened.error().code == ENOENT ? 404 : 503,
           "no log of instance '" + spec.name + "' yet: "
             + opened.error().text);
    follower = std::make_shared<log_follower>(std::move(opened.value()));
  }
  auto lines = last_lines(folder, tail);
  if (!lines) {
    if (lines.error().code != ENOENT)
      fail(503, "cannot read the log of instance '" + spec.name
                  + "': " + lines.error().text);
    if (!follow)
      fail(404, "no log of instance '" + spec.name + "' yet");
  }
  auto text = lines ? lines.value() : std::string{};
  if (!follow) {
    res.status = 200;
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::move(text);
    return false;
  }
  ex->open_stream(200, "text/plain; charset=utf-8");
  if (!text.empty() && !ex->send(std::move(text)))
    return true;
  poll_log(ex, follower);
  return true;
}

} // namespace cyme::api
