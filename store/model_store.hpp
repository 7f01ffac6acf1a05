#pragma once

/// The model store actor: owns one `model_db` and serves the model to the
/// supervisor (the `model_store_actor` seam) and to operators (the wider
/// `model_admin_actor`). Every request is one call on the database, so each
/// mutation is one transaction, persisted before the reply leaves.
///
/// Errors cross the actor boundary as `cyme_errc` codes:
/// - invalid_argument: a bad name or spec, a queue declared twice, an app
///   that still has instances, an app or queue that does not exist (the text
///   says which); nothing was changed.
/// - unknown_instance: the named instance is not in the model.
/// - store_failure: SQLite could not read or write the file.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/seams.hpp"
#include "messages/atoms.hpp"
#include "messages/instance.hpp"
#include "store/app_directory.hpp"
#include "store/model_db.hpp"

namespace cyme {

/// The model store seam plus the operations the HTTP API and the CLI need.
/// Converts implicitly to `model_store_actor`, the part the supervisor uses.
///
/// - put_instance(spec) -> the spec as stored; creates or replaces the
///   instance, and its app (default broker) when missing.
/// - delete_instance(name) -> true.
/// - set_enabled(name, enabled, reason) -> the updated spec; enabling
///   clears the reason.
/// - put_app(app) -> true when created, false when it existed and its
///   broker and launch defaults were set.
/// - get_app(name) -> the app.
/// - list_apps -> app names, sorted.
/// - delete_app(name) -> true; refused while it has instances.
/// - put_queue(app, name) -> true; refused when declared already.
/// - list_queues(app) -> queue names, sorted.
/// - delete_queue(app, name) -> true.
/// - put_broker(bootstrap, properties) -> true; empty properties remove
///   the broker's own.
/// - list_brokers -> every broker's own properties.
/// Deleting what does not exist is an error, not `false`, so the HTTP API
/// can answer 404.
using model_admin_actor = model_store_actor::extend<
  caf::replies_to<put_instance_atom, instance_spec>::with<instance_spec>,
  caf::replies_to<delete_instance_atom, std::string>::with<bool>,
  caf::replies_to<set_enabled_atom, std::string, bool, std::string>::with<
    instance_spec>,
  caf::replies_to<put_app_atom, app_record>::with<bool>,
  caf::replies_to<list_apps_atom>::with<std::vector<std::string>>,
  caf::replies_to<get_app_atom, std::string>::with<app_record>,
  caf::replies_to<delete_app_atom, std::string>::with<bool>,
  caf::replies_to<put_queue_atom, std::string, std::string>::with<bool>,
  caf::replies_to<list_queues_atom, std::string>::with<
    std::vector<std::string>>,
  caf::replies_to<delete_queue_atom, std::string, std::string>::with<bool>,
  caf::replies_to<put_broker_atom, std::string,
                  std::map<std::string, std::string>>::with<bool>,
  caf::replies_to<list_brokers_atom>::with<
    std::map<std::string, std::map<std::string, std::string>>>>;

/// Opens (creating when missing) the model database at `path`, then spawns
/// the store actor owning it. When the database cannot be opened, returns a
/// `store_failure` error saying why and spawns nothing, so a branch fails at
/// start rather than at its first write.
///
/// The actor is detached (its own thread): a commit waits for fsync, and
/// that wait must not hold one of the scheduler's few worker threads.
///
/// With `apps`, the store fills it with the model's apps and keeps it in
/// step with every change it commits, so others read an app's broker
/// without asking.
caf::expected<model_admin_actor>
spawn_model_store(caf::actor_system& sys, const std::string& path,
                  std::shared_ptr<app_directory> apps = nullptr);

} // namespace cyme
