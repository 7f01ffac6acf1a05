#pragma once

/// What the rooms of the HTTP API share: errors raised inside a handler, the
/// parameters of a request, the JSON views of the model, and the context
/// (parts, settings, typed asks). Internal to api/.

#include <optional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "api/http_api.hpp"
#include "messages/errors.hpp"
#include "transport/http_server.hpp"

namespace cyme::api {

using json = nlohmann::json;
using std::chrono::seconds;

/// An answer other than 2xx, raised inside a handler and turned into
/// {"error": text} with `status`.
struct http_error {
  int status;
  std::string text;
};

/// Thrown on the HTTP server's thread by a request that would have to
/// wait (broker I/O): it is run again on the handler pool.
struct would_wait {};

[[noreturn]] inline void fail(int status, std::string text) {
  throw http_error{status, std::move(text)};
}

/// The HTTP status of an actor's error.
int status_of(const caf::error& err);

/// The parameters of a request: query string and form fields as strings,
/// overridden by the members of a JSON object body.
/// The body of a batch of tasks may hold this many bytes (16 MiB: 10,000
/// tasks of about 1.6 KiB); any other body at most one wire message.
constexpr std::size_t max_batch_body_bytes = 16 * 1024 * 1024;

class params {
public:
  explicit params(const http::request& req);

  bool has(const std::string& key) const {
    return values_.count(key) > 0;
  }

  std::optional<std::string> text(const std::string& key) const;
  std::optional<uint32_t> count(const std::string& key) const;
  std::optional<std::vector<std::string>> list(const std::string& key) const;
  bool flag(const std::string& key) const;
  /// A value as JSON: JSON body members as they are; a string (query or
  /// form) parsed as JSON when it is, else kept as a string.
  std::optional<json> value(const std::string& key) const;

  /// The body, when it is a JSON array (a batch of tasks); null otherwise.
  const json* array() const {
    return array_ ? &*array_ : nullptr;
  }

private:
  std::map<std::string, json> values_;
  std::optional<json> array_;
};

/// 400 unless `name` is a valid name of a `what`.
void check_name(const char* what, const std::string& name);

/// A random (version 4) UUID, its 122 random bits from the kernel's
/// random source: a task's id is the only key to its result.
std::string new_uuid();

/// An instance as the API shows it: its spec, resolved launch, status, and
/// what its process uses now.
json instance_json(const instance_spec& spec, const instance_status& st,
                   const http_parts& parts);
/// The same view as JSON text, appended to `out` without building a json
/// object first (for listings).
void append_instance_text(std::string& out, const instance_spec& spec,
                          const instance_status& st, const http_parts& parts);
/// An app: its broker and the launch fields its instances inherit.
json app_json(const app_record& app);
json supervisor_json(const supervisor_status& s);
json report_json(const action_report& r);
json result_json(const std::string& id, const std::optional<task_result>& r);
std::vector<std::string> split_path(const std::string& path);

void reply(http::response& res, int status, const json& body);

/// The parts and settings every room uses, and the typed asks they make
/// (blocking: called on handler threads only).
struct context {
  http_parts parts;
  http_settings settings;

  template <class T, class Handle, class... Ts>
  T ask(const Handle& dest, Ts&&... xs) {
    caf::scoped_actor self{*parts.sys};
    std::optional<T> out;
    caf::error err;
    self
      ->request(dest, caf::timespan{settings.request_timeout},
                std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { err = std::move(e); });
    if (!out)
      fail(status_of(err), describe(err));
    return std::move(*out);
  }

  // -- model helpers ----------------------------------------------------------

  app_record get_app(const std::string& app) {
    check_name("app", app);
    return ask<app_record>(parts.store, get_app_atom::value, app);
  }

  /// The app's broker ("" for the default) from the store's directory,
  /// without asking the store; 404 when the model has no such app.
  std::string app_broker(const std::string& app) {
    check_name("app", app);
    auto broker = parts.apps->broker_of(app);
    if (!broker)
      fail(404, "app '" + app + "' does not exist");
    return std::move(*broker);
  }

  /// The app as the model holds it, or, when it is not there, a new one:
  /// the default broker and no launch defaults.
  app_record app_or_new(const std::string& app) {
    app_record rec{app, "", "{}"};
    caf::scoped_actor self{*parts.sys};
    self->request(parts.store, caf::timespan{settings.request_timeout},
                  get_app_atom::value, app)
      .receive([&](app_record& x) { rec = std::move(x); },
               [&](caf::error&) {});
    return rec;
  }

  std::optional<instance_spec> find_spec(const std::string& name) {
    auto specs = ask<std::vector<instance_spec>>(
      parts.store, get_atom::value, std::vector<std::string>{name});
    if (specs.empty())
      return std::nullopt;
    return specs.front();
  }

  instance_spec spec_in(const std::string& app, const std::string& name) {
    check_name("app", app);
    check_name("instance", name);
    auto spec = find_spec(name);
    if (!spec || spec->app != app)
      fail(404, "no instance '" + name + "' in app '" + app + "'");
    return *spec;
  }

  instance_status status_of_instance(const std::string& name) {
    caf::scoped_actor self{*parts.sys};
    instance_status st;
    st.name = name;
    self->request(parts.sup, caf::timespan{settings.request_timeout},
                  status_atom::value, name)
      .receive([&](instance_status& x) { st = std::move(x); },
               [&](caf::error&) {
                 // Not supervised (yet): the defaults say "stopped".
               });
    return st;
  }

  json instance_view(const instance_spec& spec) {
    return instance_json(spec, status_of_instance(spec.name), parts);
  }
};

} // namespace cyme::api
