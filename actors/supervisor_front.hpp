#pragma once

/// The supervisor's public front: the actor remote nodes talk to instead of
/// the supervisor (`supervisor_handles::front`).
///
/// Each public request is asked of the core and answered by the front
/// through a response promise. Not `delegate`: a delegated request is
/// answered by the core itself, and the answer's sender would give the
/// caller the core's address, to which it could then send anything.
///
///   serving --(core down)--> gone (with the core's exit reason)
///
/// Nothing a peer sends ends it (no exit or error message, no message
/// outside the interface: those get `unexpected_message`), except
/// `exit_reason::kill`, which CAF lets no actor refuse; even then only the
/// front ends, never the core.

#include "actors/supervisor.hpp"

namespace cyme {

/// Spawns the front of `core`.
supervisor_actor spawn_supervisor_front(caf::actor_system& sys,
                                        supervisor_core core);

} // namespace cyme
