#include "actors/message_types.hpp"

#include <caf/actor_system_config.hpp>

#include "actors/instance.hpp"
#include "actors/seams.hpp"
#include "actors/supervisor.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<instance_spec>("cyme.instance_spec")
    .add_message_type<instance_status>("cyme.instance_status")
    .add_message_type<instance_state>("cyme.instance_state")
    .add_message_type<worker_stats>("cyme.worker_stats")
    .add_message_type<control_op>("cyme.control_op")
    .add_message_type<control_command>("cyme.control_command")
    .add_message_type<control_reply>("cyme.control_reply")
    .add_message_type<process_exit>("cyme.process_exit")
    .add_message_type<outcome>("cyme.outcome")
    .add_message_type<action_report>("cyme.action_report")
    .add_message_type<restart_permit>("cyme.restart_permit")
    .add_message_type<restart_cause>("cyme.restart_cause")
    .add_message_type<supervisor_status>("cyme.supervisor_status")
    .add_message_type<event_kind>("cyme.event_kind")
    .add_message_type<supervisor_event>("cyme.supervisor_event")
    .add_message_type<probe_result>("cyme.probe_result")
    .add_message_type<instance_actor>("cyme.instance_actor")
    .add_message_type<event_listener>("cyme.event_listener")
    .add_message_type<exit_listener>("cyme.exit_listener")
    .add_message_type<broker_listener>("cyme.broker_listener")
    // The public interface only: supervisor_core must never cross a node
    // boundary, so it has no name here and CAF cannot serialize it.
    .add_message_type<supervisor_actor>("cyme.supervisor_actor");
}

} // namespace cyme
