#pragma once

/// The cluster as the HTTP API sees it: the live branches (presence on the
/// bus), where a new instance goes (placement), and requests handed to the
/// branch that owns an instance (forwarding). Internal to api/.

#include <optional>
#include <string>
#include <vector>

#include "api/common.hpp"

namespace cyme::api {

/// An answer of a peer branch.
struct peer_answer {
  int status = 0;
  std::string body;
};

class cluster_room {
public:
  explicit cluster_room(context& ctx) : ctx_(ctx) {
  }

  /// Whether a request spans the cluster (it is not marked `local`).
  bool clustered(const params& p) const;

  /// GET /cluster/: the live branches, this one included, as presence
  /// sees them; 404 on a branch without presence.
  void branches(const std::string& method, http::response& res) const;

  /// The live branches other than this one.
  std::vector<branch_info> peers() const;

  /// Calls a peer branch; nothing when it cannot be reached.
  std::optional<peer_answer> call(const branch_info& peer,
                                  const std::string& method,
                                  const std::string& target,
                                  const std::string& body = {},
                                  const std::string& type = "application/json");

  /// Hands the request to `peer` as it came (marked local) and answers
  /// with the peer's answer; 503 when it does not answer.
  void forward(const branch_info& peer, const http::request& req,
               http::response& res);

  /// Like `forward`, but false (and `res` untouched) when the peer does not
  /// answer.
  bool try_forward(const branch_info& peer, const http::request& req,
                   http::response& res);

  /// Answers 307, sending the client to `peer` with the same request
  /// (marked local): for streams, which are not relayed.
  void redirect(const branch_info& peer, const http::request& req,
                http::response& res);

  /// When instance `name` is not this branch's, the live branch that has it.
  std::optional<branch_info> owner_elsewhere(const std::string& app,
                                             const std::string& name);

private:
  context& ctx_;
};

} // namespace cyme::api
