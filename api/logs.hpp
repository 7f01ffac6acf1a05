#pragma once

/// GET /<app>/instances/<name>/logs/?tail=N&follow=1: the last lines of an
/// instance's log (worker.log and its backups), then, when followed, the
/// lines written since, as they come (polled, holding no thread). Internal
/// to api/.

#include "api/common.hpp"

namespace cyme::api {

/// Answers in `res` (tail only) and returns false, or opens a stream on
/// `ex` that follows the log and returns true. Called on a handler thread
/// (reading the tail may wait for one write of the log writer).
bool serve_logs(context& ctx, const http::exchange_ptr& ex,
                const instance_spec& spec, const params& p,
                http::response& res);

} // namespace cyme::api
