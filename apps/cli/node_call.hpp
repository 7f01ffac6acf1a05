#pragma once

/// `cyme --node HOST:PORT ...`: the commands that map onto the supervisor's
/// typed interface are sent as typed actor messages through CAF's
/// middleman instead of HTTP: `supervisor status|pause|resume`,
/// `instances restart APP NAME` and `instances list APP` (every instance
/// the supervisor knows, whatever the app). Anything else is a usage error.

#include <iosfwd>
#include <string>

#include "apps/cli/branch_call.hpp"

namespace cyme::cli {

/// Whether `call` has a node equivalent.
bool node_supports(const branch_call& call);

/// This node's TLS identity; all empty for plain TCP.
struct node_tls {
  std::string certificate;
  std::string key;
  std::string ca;

  bool enabled() const {
    return !certificate.empty() || !key.empty() || !ca.empty();
  }
};

/// Sends `call` to the supervisor published at `host:port`; prints like
/// `perform`. Returns the exit code.
int perform_on_node(const std::string& host, uint16_t port,
                    const node_tls& tls, const branch_call& call, bool as_json,
                    int timeout_s, std::ostream& out, std::ostream& err);

} // namespace cyme::cli
