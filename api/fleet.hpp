#pragma once

/// The fleet through the HTTP API: apps, instances, their queues and
/// actions, and the supervisor. Reads the model store, changes it, and lets
/// the supervisor act on the change. Internal to api/.

#include <optional>
#include <string>
#include <vector>

#include "api/cluster.hpp"
#include "api/common.hpp"
#include "messages/launch.hpp"

namespace cyme::api {

class fleet_room {
public:
  fleet_room(context& ctx, cluster_room& cluster)
    : ctx_(ctx), cluster_(cluster) {
  }

  void apps(const std::string& method, http::response& res);
  void app(const std::string& method, const std::string& app, const params& p,
           http::response& res);
  void instances(const http::request& req, const std::string& method,
                 const std::string& app, const params& p, http::response& res);
  void instance(const std::string& method, const std::string& app,
                const std::string& name, const params& p, http::response& res);
  void instance_action(const std::string& method, const std::string& app,
                       const std::string& name, const std::string& action,
                       const params& p, http::response& res);
  void consumer(const std::string& method, const std::string& app,
                const std::string& name, const std::string& queue,
                const params& p, http::response& res);
  void queues(const std::string& method, const std::string& app,
              http::response& res);
  void queue(const std::string& method, const std::string& app,
             const std::string& name, http::response& res);
  void supervisor(const std::string& method,
                  const std::vector<std::string>& seg, http::response& res);

private:
  /// The launch fields a request sets, as one JSON object (null members
  /// included: they mean "inherit again").
  static std::string launch_changes(const params& p);
  /// Applies a request's launch fields to stored overrides; 400 when one
  /// is invalid.
  static std::string merged_overrides(const std::string& overrides,
                                      const params& p);
  /// 403 unless the branch may run `launch`'s program (and, for
  /// cyme-worker, its --exec programs); 400 when one cannot be run.
  void check_program(const launch_spec& launch) const;
  void check_allowed(const std::string& program) const;
  /// The `kafka` field of an app request: librdkafka properties of the
  /// app's own broker (null or {} removes them: the branch's apply again).
  /// Nothing when not given; 400 when invalid or the app has no broker of
  /// its own.
  static std::optional<kafka::config_map> kafka_field(const params& p,
                                                      const std::string& broker);
  /// An app with its broker's own Kafka properties, secrets masked.
  json app_view(const app_record& app) const;
  /// Names of the instances of `app` whose launch differs in `after`.
  static std::vector<std::string>
  launch_changed(const std::vector<instance_spec>& before,
                 const std::vector<instance_spec>& after,
                 const std::string& app);
  /// Restarts instances whose launch an operator changed: once, not rate
  /// limited. Returns the reports unless `nowait`.
  std::vector<action_report> restart_changed(std::vector<std::string> names,
                                             bool nowait);
  /// Lets the supervisor act on `name` unless `nowait`; returns its report.
  std::optional<action_report> settle(const std::string& name, bool nowait);
  /// Stores `spec`, lets the supervisor act (a restart when what it runs
  /// changed), answers the instance.
  void store_and_settle(const instance_spec& spec, const params& p,
                        http::response& res, int created_status,
                        const launch_spec* launch_before = nullptr);
  void put_instance(const std::string& app, const std::string& name,
                    const params& p, http::response& res);
  /// GET /<app>/instances/: this branch's instances and, unless `local`,
  /// every live peer's (asked in parallel); with `limit`, one page of the
  /// names after `after`, in name order, and a Link to the next.
  void list_instances(const std::string& app, const params& p,
                      http::response& res);
  /// 400 when a new app would take a reserved name (an app that has one
  /// already is still served, under /apps/<name>/).
  void refuse_reserved(const std::string& app);
  /// 400 for a request that needs the control protocol of a process.
  static void require_worker(const instance_spec& spec, const char* what);

  context& ctx_;
  cluster_room& cluster_;
};

} // namespace cyme::api
