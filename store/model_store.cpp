#include "store/model_store.hpp"

#include <memory>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"
#include "store/model_db.hpp"

namespace cyme {

namespace {

struct model_store_state {
  /// Shared only to cross `spawn`, which copies its arguments; the actor is
  /// its one user.
  std::shared_ptr<model_db> db;
  /// Kept in step with the apps of `db`; may be null.
  std::shared_ptr<app_directory> apps;

  /// Sets the directory's entry of `app` from the database, after a change
  /// that may have made, changed or removed it.
  void refresh(const std::string& app) {
    if (!apps)
      return;
    auto rec = db->get_app(app);
    if (rec)
      apps->set(app, rec.value().broker);
    else if (rec.error().fault == model_fault::not_found)
      apps->erase(app);
  }

  static inline const char* name = "cyme.model_store";
};

using self_ptr = model_admin_actor::stateful_pointer<model_store_state>;

/// What a request is about: a missing instance is `unknown_instance`, a
/// missing app or queue `not_found`.
enum class subject { instance, app };

/// A model_db failure as the error an actor answers with.
caf::error to_error(const model_error& err, subject about) {
  switch (err.fault) {
    case model_fault::not_found:
      if (about == subject::instance)
        return caf::make_error(cyme_errc::unknown_instance, err.text);
      return caf::make_error(cyme_errc::not_found, err.text);
    case model_fault::invalid:
      return caf::make_error(cyme_errc::invalid_argument, err.text);
    case model_fault::conflict:
      return caf::make_error(cyme_errc::conflict, err.text);
    case model_fault::storage:
      break;
  }
  return caf::make_error(cyme_errc::store_failure, err.text);
}

template <class T>
caf::result<T> reply(model_result<T>&& r, subject about) {
  if (!r)
    return to_error(r.error(), about);
  return std::move(r.value());
}

/// For mutations with nothing to return: `true` once done.
caf::result<bool> reply_done(const model_result<void>& r, subject about) {
  if (!r)
    return to_error(r.error(), about);
  return true;
}

model_admin_actor::behavior_type
model_store(self_ptr self, std::shared_ptr<model_db> db,
            std::shared_ptr<app_directory> apps) {
  self->state.db = std::move(db);
  self->state.apps = std::move(apps);
  auto& db_ref = *self->state.db;
  auto& st = self->state;
  // Handlers capture the database by reference: the state outlives them.
  return {
    [&db_ref](list_atom) -> caf::result<std::vector<instance_spec>> {
      return reply(db_ref.list_instances(), subject::instance);
    },
    [&db_ref](get_atom, const std::vector<std::string>& names)
      -> caf::result<std::vector<instance_spec>> {
      return reply(db_ref.get_instances(names), subject::instance);
    },
    [&db_ref](disable_atom, const std::string& name,
              const std::string& reason) -> caf::result<instance_spec> {
      return reply(db_ref.set_enabled(name, false, reason),
                   subject::instance);
    },
    [&db_ref, &st](put_instance_atom,
                   const instance_spec& spec) -> caf::result<instance_spec> {
      auto r = db_ref.put_instance(spec);
      if (r)
        st.refresh(spec.app); // made when missing
      return reply(std::move(r), subject::instance);
    },
    [&db_ref](delete_instance_atom,
              const std::string& name) -> caf::result<bool> {
      return reply_done(db_ref.delete_instance(name), subject::instance);
    },
    [&db_ref](set_enabled_atom, const std::string& name, bool enabled,
              const std::string& reason) -> caf::result<instance_spec> {
      return reply(db_ref.set_enabled(name, enabled, reason),
                   subject::instance);
    },
    [&db_ref, &st](put_app_atom, const app_record& app) -> caf::result<bool> {
      auto r = db_ref.put_app(app.name, app.broker, app.launch);
      if (r)
        st.refresh(app.name);
      return reply(std::move(r), subject::app);
    },
    [&db_ref](get_app_atom, const std::string& name)
      -> caf::result<app_record> {
      return reply(db_ref.get_app(name), subject::app);
    },
    [&db_ref](list_apps_atom) -> caf::result<std::vector<std::string>> {
      return reply(db_ref.list_apps(), subject::app);
    },
    [&db_ref, &st](delete_app_atom,
                   const std::string& name) -> caf::result<bool> {
      auto r = db_ref.delete_app(name);
      if (r)
        st.refresh(name);
      return reply_done(r, subject::app);
    },
    [&db_ref](put_queue_atom, const std::string& app,
              const std::string& name) -> caf::result<bool> {
      return reply_done(db_ref.put_queue(app, name), subject::app);
    },
    [&db_ref](list_queues_atom, const std::string& app)
      -> caf::result<std::vector<std::string>> {
      return reply(db_ref.list_queues(app), subject::app);
    },
    [&db_ref](delete_queue_atom, const std::string& app,
              const std::string& name) -> caf::result<bool> {
      return reply_done(db_ref.delete_queue(app, name), subject::app);
    },
    [&db_ref](put_broker_atom, const std::string& name,
              const std::map<std::string, std::string>& props)
      -> caf::result<bool> {
      return reply_done(db_ref.put_broker(name, props), subject::app);
    },
    [&db_ref](list_brokers_atom)
      -> caf::result<std::map<std::string, std::map<std::string, std::string>>> {
      return reply(db_ref.list_brokers(), subject::app);
    },
  };
}

} // namespace

caf::expected<model_admin_actor>
spawn_model_store(caf::actor_system& sys, const std::string& path,
                  std::shared_ptr<app_directory> apps) {
  auto db = model_db::open(path);
  if (!db)
    return caf::make_error(cyme_errc::store_failure, db.error().text);
  if (apps) {
    auto names = db.value().list_apps();
    if (!names)
      return caf::make_error(cyme_errc::store_failure, names.error().text);
    for (auto& name : names.value()) {
      auto rec = db.value().get_app(name);
      if (!rec)
        return caf::make_error(cyme_errc::store_failure, rec.error().text);
      apps->set(name, rec.value().broker);
    }
  }
  return sys.spawn<caf::detached>(
    model_store, std::make_shared<model_db>(std::move(db.value())),
    std::move(apps));
}

} // namespace cyme
