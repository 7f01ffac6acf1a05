#include "store/model_db.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "messages/launch.hpp"
#include "messages/names.hpp"

namespace cyme {

namespace {

// -- schema -------------------------------------------------------------------

/// One step of the schema. Migration i (0-based) takes a file from
/// user_version i to i + 1. Append new steps; never edit a released one, as
/// files in the field have already run it.
struct migration {
  const char* what;
  const char* sql;
};

const migration migrations[] = {
  {"apps, brokers, queues, instances, instance_queues", R"sql(
    CREATE TABLE apps (
      name TEXT NOT NULL PRIMARY KEY,
      broker TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;

    CREATE TABLE brokers (
      name TEXT NOT NULL PRIMARY KEY,
      settings TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(settings) AND json_type(settings) = 'object')
    ) WITHOUT ROWID;

    CREATE TABLE queues (
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
      name TEXT NOT NULL,
      PRIMARY KEY (app, name)
    ) WITHOUT ROWID;

    CREATE TABLE instances (
      name TEXT NOT NULL PRIMARY KEY,
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE RESTRICT,
      max_concurrency INTEGER NOT NULL,
      min_concurrency INTEGER NOT NULL,
      enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
      broker TEXT NOT NULL DEFAULT '',
      disabled_reason TEXT NOT NULL DEFAULT '',
      extra_args TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(extra_args) AND json_type(extra_args) = 'array'),
      CHECK (min_concurrency >= 1 AND max_concurrency >= min_concurrency
             AND max_concurrency <= 4294967295)
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_app ON instances(app);

    CREATE TABLE instance_queues (
      instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
      position INTEGER NOT NULL,
      queue TEXT NOT NULL,
      PRIMARY KEY (instance, position),
      UNIQUE (instance, queue)
    ) WITHOUT ROWID;
    CREATE INDEX instance_queues_by_queue ON instance_queues(queue);
  )sql"},
  {"launch settings of apps and instances; extra_args become launch args",
   R"sql(
    ALTER TABLE apps ADD COLUMN launch TEXT NOT NULL DEFAULT '{}'
      CHECK (json_valid(launch) AND json_type(launch) = 'object');
    ALTER TABLE instances ADD COLUMN launch TEXT NOT NULL DEFAULT '{}'
      CHECK (json_valid(launch) AND json_type(launch) = 'object');
    UPDATE instances SET launch = json_object('args', json(extra_args))
      WHERE extra_args != '[]';
    ALTER TABLE instances DROP COLUMN extra_args;
  )sql"},
};

constexpr int migration_count
  = static_cast<int>(sizeof(migrations) / sizeof(migrations[0]));

// -- sqlite helpers -----------------------------------------------------------

model_error fail(model_fault fault, std::string text) {
  return model_error{fault, std::move(text)};
}

model_error storage_error(sqlite3* db, const std::string& doing) {
  return fail(model_fault::storage, doing + ": " + sqlite3_errmsg(db));
}

/// A prepared statement. Remembers the first failure of prepare or bind, so
/// callers bind everything and check once, at `step`.
class statement {
public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }

  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  ~statement() {
    sqlite3_finalize(stmt_);
  }

  statement& bind(int index, const std::string& text) {
    if (rc_ != SQLITE_OK)
      return *this;
    if (text.size() > static_cast<size_t>(INT_MAX))
      rc_ = SQLITE_TOOBIG;
    else
      rc_ = sqlite3_bind_text(stmt_, index, text.data(),
                              static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }

  statement& bind(int index, int64_t value) {
    if (rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }

  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() {
    if (rc_ != SQLITE_OK)
      return rc_;
    return sqlite3_step(stmt_);
  }

  /// Steps a statement that returns no rows.
  model_result<void> run(const std::string& doing) {
    if (step() != SQLITE_DONE)
      return storage_error(db_, doing);
    return {};
  }

  /// Rewinds for the next set of bindings.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    auto n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(p, static_cast<size_t>(n)) : std::string{};
  }

  int64_t integer(int col) const {
    return sqlite3_column_int64(stmt_, col);
  }

private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

/// One transaction, rolled back unless committed: every early return of a
/// failed mutation leaves the database as it was.
class transaction {
public:
  /// `write`: BEGIN IMMEDIATE takes the write lock at once, so a mutation
  /// never fails half-way on a lock another process took first. Reads use a
  /// deferred transaction for one consistent snapshot.
  transaction(sqlite3* db, bool write) : db_(db) {
    active_ = sqlite3_exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN", nullptr,
                           nullptr, nullptr)
              == SQLITE_OK;
  }

  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  ~transaction() {
    if (active_)
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  bool began() const {
    return active_;
  }

  model_result<void> commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
      return storage_error(db_, "commit");
    active_ = false;
    return {};
  }

private:
  sqlite3* db_;
  bool active_ = false;
};

model_result<int> read_user_version(sqlite3* db) {
  statement st{db, "PRAGMA user_version"};
  if (st.step() != SQLITE_ROW)
    return storage_error(db, "read schema version");
  return static_cast<int>(st.integer(0));
}

/// Runs a pragma that answers one row and returns that row's text.
model_result<std::string> pragma_text(sqlite3* db, const char* sql) {
  statement st{db, sql};
  if (st.step() != SQLITE_ROW)
    return storage_error(db, sql);
  return st.text(0);
}

model_result<void> configure(sqlite3* db) {
  // Another process (a CLI reading the model) may hold the lock briefly.
  sqlite3_busy_timeout(db, 5000);
  // Per connection, and a no-op inside a transaction: set before any.
  if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr)
      != SQLITE_OK)
    return storage_error(db, "enable foreign keys");
  auto fk = pragma_text(db, "PRAGMA foreign_keys");
  if (!fk)
    return fk.error();
  if (fk.value() != "1")
    return fail(model_fault::storage, "foreign keys are not supported");
  // WAL is a property of the file, and the first real write to it: an
  // unwritable path fails here.
  auto mode = pragma_text(db, "PRAGMA journal_mode = WAL");
  if (!mode)
    return mode.error();
  if (mode.value() != "wal")
    return fail(model_fault::storage,
                "cannot use WAL journal (journal_mode is " + mode.value()
                  + ")");
  if (sqlite3_exec(db, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr)
      != SQLITE_OK)
    return storage_error(db, "set synchronous");
  return {};
}

/// Applies the migrations the file lacks; returns how many it applied.
model_result<int> migrate(sqlite3* db) {
  int applied = 0;
  for (;;) {
    transaction tx{db, true};
    if (!tx.began())
      return storage_error(db, "begin migration");
    // Read inside the write lock: another process may have migrated the file
    // since this one last looked.
    auto version = read_user_version(db);
    if (!version)
      return version.error();
    auto v = version.value();
    if (v > migration_count)
      return fail(model_fault::storage,
                  "database schema version " + std::to_string(v)
                    + " is newer than this build's ("
                    + std::to_string(migration_count) + ")");
    if (v < 0)
      return fail(model_fault::storage,
                  "database schema version " + std::to_string(v)
                    + " is not valid");
    if (v == migration_count)
      return applied;
    const auto& m = migrations[v];
    if (sqlite3_exec(db, m.sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      return storage_error(db, "migration " + std::to_string(v + 1) + " ("
                                 + m.what + ")");
    // Pragmas take no bound parameters; the number is our own constant.
    auto set_version = "PRAGMA user_version = " + std::to_string(v + 1);
    if (sqlite3_exec(db, set_version.c_str(), nullptr, nullptr, nullptr)
        != SQLITE_OK)
      return storage_error(db, "set schema version");
    if (auto r = tx.commit(); !r)
      return r.error();
    ++applied;
  }
}

// -- row helpers --------------------------------------------------------------

model_error invalid(std::string problem) {
  return fail(model_fault::invalid, std::move(problem));
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

model_error no_instance(const std::string& name) {
  return fail(model_fault::not_found,
              "instance " + quoted(name) + " does not exist");
}

model_error no_app(const std::string& name) {
  return fail(model_fault::not_found,
              "app " + quoted(name) + " does not exist");
}

/// The query spec_from_row reads, an instance joined with its app, with
/// `where` appended.
std::string instance_query(const char* where) {
  return std::string{"SELECT i.name, i.app, i.max_concurrency, "
                     "i.min_concurrency, i.enabled, i.broker, "
                     "i.disabled_reason, i.launch, a.launch FROM instances i "
                     "JOIN apps a ON a.name = i.app "}
         + where;
}

model_result<instance_spec> spec_from_row(const statement& st) {
  instance_spec s;
  s.name = st.text(0);
  s.app = st.text(1);
  s.max_concurrency = static_cast<uint32_t>(st.integer(2));
  s.min_concurrency = static_cast<uint32_t>(st.integer(3));
  s.enabled = st.integer(4) != 0;
  s.broker = st.text(5);
  s.disabled_reason = st.text(6);
  s.launch_overrides = st.text(7);
  if (auto p = resolve_launch(st.text(8), s.launch_overrides, s.launch);
      !p.empty())
    return fail(model_fault::storage, "instance '" + s.name + "': " + p);
  return s;
}

/// Reads one instance with its queues; nothing when it does not exist.
model_result<std::optional<instance_spec>>
read_instance(sqlite3* db, const std::string& name) {
  statement st{db, instance_query("WHERE i.name = ?1").c_str()};
  st.bind(1, name);
  auto rc = st.step();
  if (rc == SQLITE_DONE)
    return std::optional<instance_spec>{};
  if (rc != SQLITE_ROW)
    return storage_error(db, "read instance " + quoted(name));
  auto row = spec_from_row(st);
  if (!row)
    return row.error();
  auto spec = std::move(row.value());
  statement qs{db, "SELECT queue FROM instance_queues WHERE instance = ?1 "
                   "ORDER BY position"};
  qs.bind(1, name);
  while ((rc = qs.step()) == SQLITE_ROW)
    spec.queues.push_back(qs.text(0));
  if (rc != SQLITE_DONE)
    return storage_error(db, "read queues of " + quoted(name));
  return std::optional<instance_spec>{std::move(spec)};
}

model_result<bool> app_exists(sqlite3* db, const std::string& name) {
  statement st{db, "SELECT 1 FROM apps WHERE name = ?1"};
  st.bind(1, name);
  auto rc = st.step();
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  return storage_error(db, "look up app " + quoted(name));
}

/// Runs a one-column query and collects its text values.
model_result<std::vector<std::string>>
collect_names(sqlite3* db, statement& st, const std::string& doing) {
  std::vector<std::string> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW)
    out.push_back(st.text(0));
  if (rc != SQLITE_DONE)
    return storage_error(db, doing);
  return out;
}

} // namespace

std::string to_string(model_fault x) {
  switch (x) {
    case model_fault::invalid:
      return "invalid";
    case model_fault::not_found:
      return "not found";
    case model_fault::conflict:
      return "conflict";
    case model_fault::storage:
      return "storage";
  }
  return "unknown";
}

// -- lifetime -----------------------------------------------------------------

model_result<model_db> model_db::open(const std::string& path) {
  if (path.empty())
    return invalid("model database path is empty");
  sqlite3* raw = nullptr;
  auto rc = sqlite3_open_v2(path.c_str(), &raw,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr);
  // From here `db` owns the handle, which sqlite3_open_v2 allocates even on
  // failure.
  model_db db{raw, path};
  if (rc != SQLITE_OK || raw == nullptr)
    return fail(model_fault::storage,
                "open " + path + ": "
                  + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  // It may hold Kafka secrets (brokers): its owner's only, as SQLite gives
  // the WAL files the database's mode.
  ::chmod(path.c_str(), 0600);
  if (auto r = configure(raw); !r)
    return fail(model_fault::storage, path + ": " + r.error().text);
  auto applied = migrate(raw);
  if (!applied)
    return fail(model_fault::storage, path + ": " + applied.error().text);
  db.migrations_applied_ = applied.value();
  return model_result<model_db>{std::move(db)};
}

model_db::model_db(sqlite3* db, std::string path)
  : db_(db), path_(std::move(path)) {
}

model_db::model_db(model_db&& other) noexcept
  : db_(std::exchange(other.db_, nullptr)),
    path_(std::move(other.path_)),
    migrations_applied_(other.migrations_applied_),
    listed_(std::move(other.listed_)),
    read_(std::move(other.read_)) {
}

model_db& model_db::operator=(model_db&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    migrations_applied_ = other.migrations_applied_;
    listed_ = std::move(other.listed_);
    read_ = std::move(other.read_);
  }
  return *this;
}

model_db::~model_db() {
  // close_v2 also frees a handle whose open failed; null is a no-op.
  sqlite3_close_v2(db_);
}

model_result<int> model_db::schema_version() const {
  return read_user_version(db_);
}

int model_db::latest_schema_version() {
  return migration_count;
}

// -- apps ---------------------------------------------------------------------

model_result<bool> model_db::put_app(const std::string& name,
                                     const std::string& broker,
                                     const std::string& launch) {
  if (auto p = name_problem("app", name); !p.empty())
    return invalid(p);
  if (auto p = broker_problem(broker); !p.empty())
    return invalid(p);
  std::string overrides;
  if (auto p = merge_launch_overrides("{}", launch, overrides); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto exists = app_exists(db_, name);
  if (!exists)
    return exists.error();
  statement st{db_, "INSERT INTO apps (name, broker, launch) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (name) DO UPDATE "
                    "SET broker = excluded.broker, launch = excluded.launch"};
  st.bind(1, name).bind(2, broker).bind(3, overrides);
  if (auto r = st.run("put app " + quoted(name)); !r)
    return r.error();
  // The app's launch is inherited: every instance must still be runnable.
  statement inst{db_, "SELECT name FROM instances WHERE app = ?1"};
  inst.bind(1, name);
  auto names = collect_names(db_, inst, "list instances of " + quoted(name));
  if (!names)
    return names.error();
  for (const auto& instance : names.value()) {
    auto spec = read_instance(db_, instance);
    if (!spec)
      return spec.error();
    if (!spec.value())
      continue;
    if (auto p = spec_problem(*spec.value()); !p.empty())
      return invalid("instance " + quoted(instance)
                     + " of the app would not be runnable: " + p);
  }
  if (auto r = tx.commit(); !r)
    return r.error();
  return !exists.value();
}

model_result<app_record> model_db::get_app(const std::string& name) const {
  if (auto p = name_problem("app", name); !p.empty())
    return invalid(p);
  statement st{db_, "SELECT name, broker, launch FROM apps WHERE name = ?1"};
  st.bind(1, name);
  auto rc = st.step();
  if (rc == SQLITE_DONE)
    return no_app(name);
  if (rc != SQLITE_ROW)
    return storage_error(db_, "read app " + quoted(name));
  return app_record{st.text(0), st.text(1), st.text(2)};
}

model_result<std::vector<std::string>> model_db::list_apps() const {
  statement st{db_, "SELECT name FROM apps ORDER BY name"};
  return collect_names(db_, st, "list apps");
}

model_result<void> model_db::delete_app(const std::string& name) {
  if (auto p = name_problem("app", name); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto exists = app_exists(db_, name);
  if (!exists)
    return exists.error();
  if (!exists.value())
    return no_app(name);
  statement count{db_, "SELECT count(*) FROM instances WHERE app = ?1"};
  count.bind(1, name);
  if (count.step() != SQLITE_ROW)
    return storage_error(db_, "count instances of " + quoted(name));
  if (auto n = count.integer(0); n > 0)
    return fail(model_fault::conflict,
                "app " + quoted(name) + " still has " + std::to_string(n)
                  + " instance" + (n == 1 ? "" : "s")
                  + "; delete them first");
  // Its queues go with it (ON DELETE CASCADE).
  statement st{db_, "DELETE FROM apps WHERE name = ?1"};
  st.bind(1, name);
  if (auto r = st.run("delete app " + quoted(name)); !r)
    return r;
  return tx.commit();
}

// -- brokers ------------------------------------------------------------------

model_result<void>
model_db::put_broker(const std::string& name,
                     const std::map<std::string, std::string>& properties) {
  if (name.empty())
    return invalid("a broker's properties need the broker's address");
  if (auto p = broker_problem(name); !p.empty())
    return invalid(p);
  std::string text;
  try {
    text = nlohmann::json(properties).dump();
  } catch (const nlohmann::json::exception&) {
    return invalid("Kafka properties must be UTF-8 text");
  }
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  if (properties.empty()) {
    statement st{db_, "DELETE FROM brokers WHERE name = ?1"};
    st.bind(1, name);
    if (auto r = st.run("remove broker " + quoted(name)); !r)
      return r;
  } else {
    statement st{db_, "INSERT INTO brokers (name, settings) VALUES (?1, ?2) "
                      "ON CONFLICT (name) DO UPDATE "
                      "SET settings = excluded.settings"};
    st.bind(1, name).bind(2, text);
    if (auto r = st.run("put broker " + quoted(name)); !r)
      return r;
  }
  return tx.commit();
}

model_result<std::map<std::string, std::map<std::string, std::string>>>
model_db::list_brokers() const {
  statement st{db_, "SELECT name, settings FROM brokers ORDER BY name"};
  std::map<std::string, std::map<std::string, std::string>> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    auto doc = nlohmann::json::parse(st.text(1), nullptr, false);
    auto& props = out[st.text(0)];
    if (!doc.is_object())
      return fail(model_fault::storage,
                  "the properties of broker " + quoted(st.text(0))
                    + " are not a JSON object");
    for (auto& [key, value] : doc.items()) {
      if (!value.is_string())
        return fail(model_fault::storage,
                    "property " + key + " of broker " + quoted(st.text(0))
                      + " is not a string");
      props[key] = value.get<std::string>();
    }
  }
  if (rc != SQLITE_DONE)
    return storage_error(db_, "list brokers");
  return out;
}

// -- queues -------------------------------------------------------------------

model_result<void> model_db::put_queue(const std::string& app,
                                       const std::string& name) {
  if (auto p = name_problem("app", app); !p.empty())
    return invalid(p);
  if (auto p = name_problem("queue", name); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto exists = app_exists(db_, app);
  if (!exists)
    return exists.error();
  if (!exists.value())
    return no_app(app);
  statement st{db_, "INSERT INTO queues (app, name) VALUES (?1, ?2) "
                    "ON CONFLICT DO NOTHING"};
  st.bind(1, app).bind(2, name);
  if (auto r = st.run("put queue " + quoted(name)); !r)
    return r;
  if (sqlite3_changes(db_) == 0)
    return fail(model_fault::conflict, "queue " + quoted(name)
                                         + " already exists in app "
                                         + quoted(app));
  return tx.commit();
}

model_result<std::vector<std::string>>
model_db::list_queues(const std::string& app) const {
  if (auto p = name_problem("app", app); !p.empty())
    return invalid(p);
  transaction tx{db_, false};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto exists = app_exists(db_, app);
  if (!exists)
    return exists.error();
  if (!exists.value())
    return no_app(app);
  statement st{db_, "SELECT name FROM queues WHERE app = ?1 ORDER BY name"};
  st.bind(1, app);
  return collect_names(db_, st, "list queues of " + quoted(app));
}

model_result<void> model_db::delete_queue(const std::string& app,
                                          const std::string& name) {
  if (auto p = name_problem("app", app); !p.empty())
    return invalid(p);
  if (auto p = name_problem("queue", name); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto exists = app_exists(db_, app);
  if (!exists)
    return exists.error();
  if (!exists.value())
    return no_app(app);
  statement st{db_, "DELETE FROM queues WHERE app = ?1 AND name = ?2"};
  st.bind(1, app).bind(2, name);
  if (auto r = st.run("delete queue " + quoted(name)); !r)
    return r;
  if (sqlite3_changes(db_) == 0)
    return fail(model_fault::not_found, "queue " + quoted(name)
                                          + " does not exist in app "
                                          + quoted(app));
  return tx.commit();
}

// -- instances ----------------------------------------------------------------

model_result<instance_spec> model_db::put_instance(const instance_spec& spec) {
  // The launch is resolved (and the whole spec checked again) once the
  // app's defaults are at hand, below.
  auto basic = spec;
  basic.launch = launch_spec{};
  if (auto p = spec_problem(basic); !p.empty())
    return invalid(p);
  std::string overrides;
  if (auto p = merge_launch_overrides("{}", spec.launch_overrides, overrides);
      !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  statement app{db_, "INSERT INTO apps (name, broker) VALUES (?1, '') "
                     "ON CONFLICT (name) DO NOTHING"};
  app.bind(1, spec.app);
  if (auto r = app.run("create app " + quoted(spec.app)); !r)
    return r.error();
  // An upsert rather than INSERT OR REPLACE: REPLACE deletes the row first,
  // which would cascade to its queues.
  statement st{db_,
               "INSERT INTO instances (name, app, max_concurrency, "
               "min_concurrency, enabled, broker, disabled_reason, launch) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
               "ON CONFLICT (name) DO UPDATE SET app = excluded.app, "
               "max_concurrency = excluded.max_concurrency, "
               "min_concurrency = excluded.min_concurrency, "
               "enabled = excluded.enabled, broker = excluded.broker, "
               "disabled_reason = excluded.disabled_reason, "
               "launch = excluded.launch"};
  st.bind(1, spec.name)
    .bind(2, spec.app)
    .bind(3, static_cast<int64_t>(spec.max_concurrency))
    .bind(4, static_cast<int64_t>(spec.min_concurrency))
    .bind(5, int64_t{spec.enabled ? 1 : 0})
    .bind(6, spec.broker)
    .bind(7, spec.enabled ? std::string{} : spec.disabled_reason)
    .bind(8, overrides);
  if (auto r = st.run("put instance " + quoted(spec.name)); !r)
    return r.error();
  statement clear{db_, "DELETE FROM instance_queues WHERE instance = ?1"};
  clear.bind(1, spec.name);
  if (auto r = clear.run("replace queues of " + quoted(spec.name)); !r)
    return r.error();
  statement add{db_, "INSERT INTO instance_queues (instance, position, queue) "
                     "VALUES (?1, ?2, ?3)"};
  // A queue an instance consumes is a queue of its app.
  statement declare{db_, "INSERT INTO queues (app, name) VALUES (?1, ?2) "
                         "ON CONFLICT DO NOTHING"};
  for (size_t i = 0; i < spec.queues.size(); ++i) {
    add.reset();
    add.bind(1, spec.name)
      .bind(2, static_cast<int64_t>(i))
      .bind(3, spec.queues[i]);
    if (auto r = add.run("add queue " + quoted(spec.queues[i])); !r)
      return r.error();
    declare.reset();
    declare.bind(1, spec.app).bind(2, spec.queues[i]);
    if (auto r = declare.run("declare queue " + quoted(spec.queues[i])); !r)
      return r.error();
  }
  auto stored = read_instance(db_, spec.name);
  if (!stored)
    return stored.error();
  if (!stored.value())
    return fail(model_fault::storage,
                "instance " + quoted(spec.name) + " vanished while written");
  if (auto p = spec_problem(*stored.value()); !p.empty())
    return invalid(p);
  if (auto r = tx.commit(); !r)
    return r.error();
  return std::move(*stored.value());
}

model_result<instance_spec>
model_db::get_instance(const std::string& name) const {
  if (auto p = name_problem("instance", name); !p.empty())
    return invalid(p);
  transaction tx{db_, false};
  if (!tx.began())
    return storage_error(db_, "begin");
  auto found = read_instance(db_, name);
  if (!found)
    return found.error();
  if (!found.value())
    return no_instance(name);
  return std::move(*found.value());
}

model_result<std::vector<instance_spec>>
model_db::get_instances(const std::vector<std::string>& names) const {
  // Every repair of a dead instance reads its spec here, to check what it
  // started against the model, and a query costs a few hundred
  // microseconds: while nothing was written, the answer comes from the kept
  // listing or from the specs read by name since the last write.
  auto mark = write_mark();
  bool holds = mark.first >= 0;
  const std::vector<instance_spec>* listed = nullptr;
  if (holds && listed_ && listed_->mark == mark)
    listed = &listed_->specs;
  if (!holds || read_.mark != mark) {
    read_.specs.clear();
    read_.mark = mark;
  }
  std::optional<transaction> tx;
  std::vector<instance_spec> out;
  std::set<std::string> seen;
  for (auto& name : names) {
    if (!name_problem("instance", name).empty() || !seen.insert(name).second)
      continue;
    if (listed != nullptr) {
      auto i = std::lower_bound(listed->begin(), listed->end(), name,
                                [](const instance_spec& s,
                                   const std::string& n) { return s.name < n; });
      if (i != listed->end() && i->name == name)
        out.push_back(*i);
      continue;
    }
    if (auto i = read_.specs.find(name); i != read_.specs.end()) {
      out.push_back(i->second);
      continue;
    }
    if (!tx) {
      tx.emplace(db_, false);
      if (!tx->began())
        return storage_error(db_, "begin");
    }
    auto found = read_instance(db_, name);
    if (!found)
      return found.error();
    if (found.value()) {
      if (holds)
        read_.specs.emplace(name, *found.value());
      out.push_back(std::move(*found.value()));
    }
  }
  return out;
}

std::pair<int64_t, int64_t> model_db::write_mark() const {
  // data_version moves when another connection commits; this
  // connection's own writes show in its count of changed rows.
  statement st{db_, "PRAGMA data_version"};
  int64_t version = st.step() == SQLITE_ROW ? st.integer(0) : -1;
  return {version, sqlite3_total_changes64(db_)};
}

model_result<std::vector<instance_spec>> model_db::list_instances() const {
  // Read before the listing: a write landing during it shows as a newer
  // mark next time, never as a stale listing kept.
  auto mark = write_mark();
  if (listed_ && mark.first >= 0 && listed_->mark == mark)
    return listed_->specs;
  listed_.reset();
  // Two scans rather than one query per instance: a branch may hold
  // thousands, and the supervisor lists them every round.
  transaction tx{db_, false};
  if (!tx.began())
    return storage_error(db_, "begin");
  std::vector<instance_spec> out;
  std::map<std::string, size_t> index;
  statement st{db_, instance_query("ORDER BY i.name").c_str()};
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    auto row = spec_from_row(st);
    if (!row)
      return row.error();
    index.emplace(row.value().name, out.size());
    out.push_back(std::move(row.value()));
  }
  if (rc != SQLITE_DONE)
    return storage_error(db_, "list instances");
  statement qs{db_, "SELECT instance, queue FROM instance_queues "
                    "ORDER BY instance, position"};
  while ((rc = qs.step()) == SQLITE_ROW)
    if (auto i = index.find(qs.text(0)); i != index.end())
      out[i->second].queues.push_back(qs.text(1));
  if (rc != SQLITE_DONE)
    return storage_error(db_, "list instance queues");
  if (mark.first >= 0)
    listed_ = listing{mark, out};
  return out;
}

model_result<void> model_db::delete_instance(const std::string& name) {
  if (auto p = name_problem("instance", name); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  // Its queue rows go with it (ON DELETE CASCADE).
  statement st{db_, "DELETE FROM instances WHERE name = ?1"};
  st.bind(1, name);
  if (auto r = st.run("delete instance " + quoted(name)); !r)
    return r;
  if (sqlite3_changes(db_) == 0)
    return no_instance(name);
  return tx.commit();
}

model_result<instance_spec> model_db::set_enabled(const std::string& name,
                                                  bool enabled,
                                                  const std::string& reason) {
  if (auto p = name_problem("instance", name); !p.empty())
    return invalid(p);
  transaction tx{db_, true};
  if (!tx.began())
    return storage_error(db_, "begin");
  statement st{db_, "UPDATE instances SET enabled = ?2, disabled_reason = ?3 "
                    "WHERE name = ?1"};
  st.bind(1, name)
    .bind(2, int64_t{enabled ? 1 : 0})
    .bind(3, enabled ? std::string{} : reason);
  if (auto r = st.run("set enabled of " + quoted(name)); !r)
    return r.error();
  if (sqlite3_changes(db_) == 0)
    return no_instance(name);
  auto stored = read_instance(db_, name);
  if (!stored)
    return stored.error();
  if (!stored.value())
    return no_instance(name);
  if (auto r = tx.commit(); !r)
    return r.error();
  return std::move(*stored.value());
}

} // namespace cyme
