#pragma once

/// The one registration list of cyme's message vocabulary: every type that
/// may cross a node boundary (CAF's middleman) is announced here, under a
/// stable name. A program that talks to supervisors on other nodes calls
/// this on its configuration, with the io module loaded.

#include <caf/fwd.hpp>

namespace cyme {

/// Announces every cyme message type to `cfg`.
void add_message_types(caf::actor_system_config& cfg);

} // namespace cyme
