#pragma once

/// The durable model in one SQLite file: apps, brokers, queues and
/// instances. A plain class over the sqlite3 C API, owned by one actor (see
/// model_store.hpp) and usable on its own by tools and tests.
///
/// Guarantees:
/// - Every name is validated (messages/names.hpp) before anything is
///   written; every mutation is exactly one transaction; a failed call leaves
///   the database as it was.
/// - Nothing throws across this API: failures come back as a `model_error`.
/// - SQL is constant text with bound parameters; input never becomes SQL.
/// - Durability: WAL journal with `synchronous = FULL`, so a committed change
///   survives a `kill -9` of the branch and a power loss alike (model writes
///   are operator actions, rare enough that the extra fsync costs nothing).
///
/// Schema (version 2):
/// - apps(name PK, broker, launch): broker "" means the branch's default
///   broker; launch = JSON object of the launch fields its instances
///   inherit (messages/launch.hpp).
/// - brokers(name PK = bootstrap servers, settings = JSON object of
///   librdkafka properties, strings): the client settings of a broker an
///   app names, replacing the branch's own for it. The file may then hold
///   secrets: it is made readable by its owner only.
/// - queues(app FK, name), unique per app: the queues an app declares.
///   Deleted with their app.
/// - instances(name PK, app FK, max/min_concurrency, enabled, broker,
///   disabled_reason, launch = JSON object of its own launch fields).
///   Version 1 had extra_args (a JSON array); migration 2 moved them into
///   launch.args.
/// - instance_queues(instance FK, position, queue): the queues an instance
///   consumes, in order. A table rather than a JSON column so SQL enforces
///   "no queue twice per instance", keeps the order, and "which instances
///   consume queue q" is an indexed query. Instance queues do not have to
///   be declared in `queues`: a worker may consume any valid topic, as in
///   Cyme.
///
/// The schema version is `PRAGMA user_version`. Opening a file applies the
/// migrations it lacks, in order, each in its own transaction; a file newer
/// than this build is refused rather than misread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "messages/instance.hpp"

struct sqlite3;

namespace cyme {

/// Why a model_db call failed.
enum class model_fault : uint8_t {
  /// A name, spec or argument failed validation.
  invalid,
  /// The named app, queue or instance is not in the model.
  not_found,
  /// The request contradicts the model: the queue exists already, the app
  /// still has instances.
  conflict,
  /// SQLite could not open, read or write the database.
  storage,
};

std::string to_string(model_fault x);

/// A failed model_db call: what kind of failure, and a sentence saying why.
struct model_error {
  model_fault fault = model_fault::storage;
  std::string text;
};

/// Either a value or a model_error. `value()` on an error is a programming
/// error (it throws std::bad_variant_access); test with `ok()` first.
template <class T>
class model_result {
public:
  model_result(T value) : data_(std::in_place_index<0>, std::move(value)) {
  }

  model_result(model_error err)
    : data_(std::in_place_index<1>, std::move(err)) {
  }

  bool ok() const {
    return data_.index() == 0;
  }

  explicit operator bool() const {
    return ok();
  }

  T& value() {
    return std::get<0>(data_);
  }

  const T& value() const {
    return std::get<0>(data_);
  }

  const model_error& error() const {
    return std::get<1>(data_);
  }

private:
  std::variant<T, model_error> data_;
};

/// Success, or a model_error.
template <>
class model_result<void> {
public:
  model_result() = default;

  model_result(model_error err) : error_(std::move(err)) {
  }

  bool ok() const {
    return !error_.has_value();
  }

  explicit operator bool() const {
    return ok();
  }

  const model_error& error() const {
    return *error_;
  }

private:
  std::optional<model_error> error_;
};

/// An app as the model holds it.
struct app_record {
  std::string name;
  /// Default broker of its instances; empty: the branch's default.
  std::string broker;
  /// Launch fields its instances inherit, as a JSON object.
  std::string launch = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_record& x) {
  return f(caf::meta::type_name("app_record"), x.name, x.broker, x.launch);
}

/// One open model database. Movable, not copyable; not thread-safe (one
/// owner, the model store actor).
class model_db {
public:
  /// Opens the database at `path`, creating the file when missing; switches
  /// it to WAL with full fsync, turns on foreign keys and applies pending
  /// migrations. Fails (storage) when the file cannot be opened or written,
  /// or was written by a newer schema; (invalid) for an empty path.
  static model_result<model_db> open(const std::string& path);

  model_db(model_db&& other) noexcept;
  model_db& operator=(model_db&& other) noexcept;
  model_db(const model_db&) = delete;
  model_db& operator=(const model_db&) = delete;
  ~model_db();

  /// The file this database lives in.
  const std::string& path() const {
    return path_;
  }

  /// The schema version of the file (`PRAGMA user_version`).
  model_result<int> schema_version() const;

  /// The schema version this build writes: the number of migrations it has.
  static int latest_schema_version();

  /// How many migrations `open` applied to this file (0 if up to date).
  int migrations_applied() const {
    return migrations_applied_;
  }

  // -- apps -------------------------------------------------------------------

  /// Creates the app, or sets the broker and launch defaults of an
  /// existing one. Refused (invalid) when a launch field is invalid or an
  /// instance of the app would no longer be runnable. Returns true when it
  /// created the app.
  model_result<bool> put_app(const std::string& name,
                             const std::string& broker,
                             const std::string& launch = "{}");

  /// The app named `name` (not_found if none).
  model_result<app_record> get_app(const std::string& name) const;

  /// Names of every app, sorted.
  model_result<std::vector<std::string>> list_apps() const;

  /// Deletes the app and its queues; refused (conflict) while it has
  /// instances, so removing an app never orphans running workers.
  model_result<void> delete_app(const std::string& name);

  // -- brokers ----------------------------------------------------------------

  /// Sets the client properties of broker `name` (bootstrap servers);
  /// empty removes them. Keys and values are checked by the caller against
  /// librdkafka; here only that `name` is a broker list.
  model_result<void>
  put_broker(const std::string& name,
             const std::map<std::string, std::string>& properties);

  /// Every broker's properties, by broker.
  model_result<std::map<std::string, std::map<std::string, std::string>>>
  list_brokers() const;

  // -- queues -----------------------------------------------------------------

  /// Declares queue `name` in `app`. The app must exist (not_found); a queue
  /// declared twice is a conflict.
  model_result<void> put_queue(const std::string& app, const std::string& name);

  /// Names of the queues `app` declares, sorted (not_found for no such app).
  model_result<std::vector<std::string>>
  list_queues(const std::string& app) const;

  /// Removes a declared queue (not_found for no such app or queue).
  model_result<void> delete_queue(const std::string& app,
                                  const std::string& name);

  // -- instances --------------------------------------------------------------

  /// Creates or replaces the instance `spec.name` after `spec_problem`
  /// accepts it. Its app is created, with the default broker, when missing:
  /// an instance names its app (as `PUT /<app>/instances/<name>/` does), and
  /// refusing until someone PUTs the app first would only add a step.
  /// Its launch is `spec.launch_overrides` over its app's defaults; the
  /// resolved spec must pass `spec_problem`. An enabled instance has no
  /// disabled_reason: one given is dropped. Returns the spec as stored,
  /// with its launch resolved.
  model_result<instance_spec> put_instance(const instance_spec& spec);

  /// The instance named `name` (not_found if none).
  model_result<instance_spec> get_instance(const std::string& name) const;

  /// The instances among `names` that exist, in the order asked, each once.
  /// Invalid names cannot exist and are simply not found. Answered from
  /// the kept listing (see list_instances), or from the specs it read by
  /// name, while nothing was written since.
  model_result<std::vector<instance_spec>>
  get_instances(const std::vector<std::string>& names) const;

  /// Every instance, sorted by name. Kept from the last listing while no
  /// connection, this one or another process's, has written the file
  /// since (`PRAGMA data_version` and this connection's count of changes):
  /// the supervisor lists every instance each round.
  model_result<std::vector<instance_spec>> list_instances() const;

  /// Deletes the instance (not_found if none).
  model_result<void> delete_instance(const std::string& name);

  /// Enables or disables the instance. Disabling records `reason`; enabling
  /// clears it. Returns the updated spec (not_found if none).
  model_result<instance_spec> set_enabled(const std::string& name,
                                          bool enabled,
                                          const std::string& reason);

private:
  model_db(sqlite3* db, std::string path);

  /// The written state of the file as this connection sees it: changed
  /// when any connection has written it.
  std::pair<int64_t, int64_t> write_mark() const;

  sqlite3* db_ = nullptr;
  std::string path_;
  int migrations_applied_ = 0;
  /// The last listing and the write mark it was read at.
  struct listing {
    std::pair<int64_t, int64_t> mark;
    std::vector<instance_spec> specs;
  };
  mutable std::optional<listing> listed_;
  /// Specs get_instances read by name, and the write mark they hold at.
  struct read_by_name {
    std::pair<int64_t, int64_t> mark{-1, -1};
    std::map<std::string, instance_spec> specs;
  };
  mutable read_by_name read_;
};

} // namespace cyme
