#pragma once

/// GET /metrics: the branch in the Prometheus text format (0.0.4): each of
/// its instances, the supervisor, the control bus, tasks, the HTTP server
/// and the branch process itself. Internal to api/.

#include <string>

#include "api/common.hpp"
#include "api/tasks.hpp"

namespace cyme::api {

/// Renders the exposition (asks the supervisor and the store: called on a
/// handler thread).
std::string render_metrics(context& ctx, const task_room& tasks,
                           const http::server_counters* server);

} // namespace cyme::api
