// The durable model: model_db over SQLite (round trips, durability,
// migrations, rejections that change nothing) and the store actor in front
// of it.
#include <algorithm>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <sqlite3.h>

#include "messages/errors.hpp"
#include "store/model_db.hpp"
#include "store/model_store.hpp"

using namespace cyme;
using namespace std::chrono_literals;

namespace {

/// A fresh directory under /tmp per test, removed with everything in it.
struct temp_dir {
  std::filesystem::path dir;

  temp_dir() {
    char tmpl[] = "/tmp/cyme-model-XXXXXX";
    BOOST_REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::string db_path() const {
    return (dir / "model.db").string();
  }
};

model_db open_db(const std::string& path) {
  auto db = model_db::open(path);
  BOOST_REQUIRE_MESSAGE(db.ok(), (db.ok() ? "" : db.error().text));
  return std::move(db.value());
}

instance_spec full_spec() {
  instance_spec s;
  s.name = "w1";
  s.app = "shop";
  // Not sorted: the order must survive.
  s.queues = {"orders", "emails", "billing.v2"};
  s.max_concurrency = 8;
  s.min_concurrency = 3;
  s.enabled = false;
  s.broker = "10.0.0.1:9092,kafka-2:9093";
  s.disabled_reason = "restarted too often (1/m)";
  return s;
}

instance_spec small_spec(std::string name, std::string app) {
  instance_spec s;
  s.name = std::move(name);
  s.app = std::move(app);
  s.queues = {"q1"};
  return s;
}

std::string render(const instance_spec& s) {
  std::ostringstream out;
  out << s.name << " app=" << s.app << " queues=[";
  for (auto& q : s.queues)
    out << q << ",";
  out << "] max=" << s.max_concurrency << " min=" << s.min_concurrency
      << " enabled=" << s.enabled << " broker=" << s.broker
      << " reason=" << s.disabled_reason
      << " launch=" << launch_json_text(s.launch)
      << " overrides=" << s.launch_overrides;
  return out.str();
}

/// Everything the model holds, as text: equal snapshots, equal models.
std::string snapshot(const model_db& db) {
  std::ostringstream out;
  auto apps = db.list_apps();
  BOOST_REQUIRE(apps.ok());
  for (auto& name : apps.value()) {
    auto app = db.get_app(name);
    BOOST_REQUIRE(app.ok());
    out << "app " << name << " broker=" << app.value().broker
        << " launch=" << app.value().launch << "\n";
    auto queues = db.list_queues(name);
    BOOST_REQUIRE(queues.ok());
    for (auto& q : queues.value())
      out << "  queue " << q << "\n";
  }
  auto instances = db.list_instances();
  BOOST_REQUIRE(instances.ok());
  for (auto& s : instances.value())
    out << "instance " << render(s) << "\n";
  return out.str();
}

/// A model with a bit of everything, for rejections to leave untouched.
void populate(model_db& db) {
  BOOST_REQUIRE(db.put_app("shop", "localhost:9092").ok());
  BOOST_REQUIRE(db.put_app("empty", "").ok());
  BOOST_REQUIRE(db.put_queue("shop", "orders").ok());
  BOOST_REQUIRE(db.put_queue("shop", "emails").ok());
  BOOST_REQUIRE(db.put_instance(full_spec()).ok());
  auto w2 = small_spec("w2", "shop");
  w2.launch_overrides = R"({"args": ["--loglevel", "debug"]})";
  BOOST_REQUIRE(db.put_instance(w2).ok());
}

std::vector<std::string> names_of(const std::vector<instance_spec>& xs) {
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.name);
  return out;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(model_database, temp_dir)

BOOST_AUTO_TEST_CASE(every_field_round_trips) {
  // What put stores, get and list return field for field, its launch too.
  auto db = open_db(db_path());
  auto spec = full_spec();
  auto put = db.put_instance(spec);
  BOOST_REQUIRE(put.ok());
  BOOST_TEST(render(put.value()) == render(spec));
  auto got = db.get_instance("w1");
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got.value() == spec), render(got.value()));
  auto all = db.list_instances();
  BOOST_REQUIRE(all.ok());
  BOOST_REQUIRE(all.value().size() == 1u);
  BOOST_TEST((all.value().front() == spec));
  std::vector<std::string> args{"--pool", "prefork", "a b 'c' \"d\" $(id)",
                                "ünïcode", ""};
  spec.launch_overrides
    = R"js({"program": "/usr/bin/env", "args": ["--pool", "prefork", "a b 'c' \"d\" $(id)", "ünïcode", ""], "env": {"A_B": "x y"}, "cwd": "/tmp", "stop_signal": "INT", "stop_grace_s": 2.5})js";
  auto with_launch = db.put_instance(spec);
  BOOST_REQUIRE_MESSAGE(with_launch.ok(),
                        (with_launch.ok() ? "" : with_launch.error().text));
  auto launch = db.get_instance("w1").value().launch;
  BOOST_TEST(launch.program == "/usr/bin/env");
  BOOST_TEST(launch.args == args);
  BOOST_TEST(launch.env.at("A_B") == "x y");
  BOOST_TEST(launch.cwd == "/tmp");
  BOOST_TEST(launch.stop_signal == "INT");
  BOOST_TEST(launch.stop_grace_ms == 2500u);
  BOOST_TEST((launch.kind == instance_kind::worker));
  BOOST_REQUIRE(db.put_app("other", "broker-1:9092").ok());
  auto app = db.get_app("other");
  BOOST_REQUIRE(app.ok());
  BOOST_TEST(app.value().broker == "broker-1:9092");
  BOOST_REQUIRE(db.put_queue("other", "tasks").ok());
  auto queues = db.list_queues("other");
  BOOST_REQUIRE(queues.ok());
  BOOST_TEST(queues.value() == std::vector<std::string>{"tasks"});
}

BOOST_AUTO_TEST_CASE(put_instance_creates_its_app_with_the_default_broker) {
  // An instance of an unknown app creates the app, broker empty; put_app on
  // it later sets the broker and reports it was not new.
  auto db = open_db(db_path());
  BOOST_TEST(!db.get_app("shop").ok());
  BOOST_REQUIRE(db.put_instance(small_spec("w1", "shop")).ok());
  auto app = db.get_app("shop");
  BOOST_REQUIRE(app.ok());
  BOOST_TEST(app.value().broker == "");
  auto again = db.put_app("shop", "localhost:9092");
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(!again.value());
  BOOST_TEST(db.get_app("shop").value().broker == "localhost:9092");
  auto fresh = db.put_app("new", "");
  BOOST_REQUIRE(fresh.ok());
  BOOST_TEST(fresh.value());
}

BOOST_AUTO_TEST_CASE(replacing_an_instance_replaces_every_field) {
  // A second put replaces every spec field, the queue list and the launch.
  auto db = open_db(db_path());
  auto first = full_spec();
  first.launch_overrides = R"({"args": ["-O", "fair"]})";
  BOOST_REQUIRE(db.put_instance(first).ok());
  auto spec = full_spec();
  spec.queues = {"emails"};
  spec.max_concurrency = 2;
  spec.min_concurrency = 1;
  spec.enabled = true;
  spec.disabled_reason = "ignored: an enabled instance has no reason";
  spec.broker = "";
  auto put = db.put_instance(spec);
  BOOST_REQUIRE(put.ok());
  spec.disabled_reason.clear();
  BOOST_TEST((put.value() == spec), render(put.value()));
  BOOST_TEST((db.get_instance("w1").value() == spec));
  BOOST_TEST(db.get_instance("w1").value().launch.args.empty());
}

BOOST_AUTO_TEST_CASE(instances_inherit_their_apps_launch) {
  // An app's launch fields reach every instance that does not set them;
  // an instance's own win; a change of the app reaches them all.
  auto db = open_db(db_path());
  BOOST_REQUIRE(
    db.put_app("legacy", "", R"({"kind": "process", "program": "/bin/sleep", "args": ["60"], "stop_signal": "HUP"})")
      .ok());
  auto a = small_spec("a", "legacy");
  a.queues.clear();
  auto b = a;
  b.name = "b";
  b.launch_overrides = R"({"args": ["30"], "stop_grace_s": 1})";
  BOOST_REQUIRE(db.put_instance(a).ok());
  BOOST_REQUIRE(db.put_instance(b).ok());
  auto la = db.get_instance("a").value().launch;
  auto lb = db.get_instance("b").value().launch;
  BOOST_TEST((la.kind == instance_kind::process));
  BOOST_TEST(la.program == "/bin/sleep");
  BOOST_TEST(la.args == std::vector<std::string>{"60"});
  BOOST_TEST(la.stop_signal == "HUP");
  BOOST_TEST(lb.args == std::vector<std::string>{"30"});
  BOOST_TEST(lb.stop_grace_ms == 1000u);
  BOOST_TEST(lb.stop_signal == "HUP");
  BOOST_REQUIRE(
    db.put_app("legacy", "", R"({"kind": "process", "program": "/bin/true"})")
      .ok());
  BOOST_TEST(db.get_instance("a").value().launch.program == "/bin/true");
  BOOST_TEST(db.get_instance("a").value().launch.stop_signal == "TERM");
}

BOOST_AUTO_TEST_CASE(an_app_change_that_breaks_an_instance_is_refused) {
  // Making an app's instances processes while one consumes queues, or
  // giving a worker's args a branch flag, changes nothing.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto to_process = db.put_app("shop", "localhost:9092",
                               R"({"kind": "process", "program": "/bin/true"})");
  BOOST_REQUIRE(!to_process.ok());
  BOOST_TEST((to_process.error().fault == model_fault::invalid));
  BOOST_TEST(to_process.error().text.find("consumes no queues")
             != std::string::npos, to_process.error().text);
  auto flag = db.put_app("shop", "localhost:9092", R"({"args": ["--name", "x"]})");
  BOOST_REQUIRE(!flag.ok());
  BOOST_TEST(snapshot(db) == before);
}

BOOST_AUTO_TEST_CASE(model_survives_reopen) {
  // Close and reopen the file: everything is still there.
  std::string before;
  {
    auto db = open_db(db_path());
    populate(db);
    before = snapshot(db);
  }
  BOOST_TEST(before.find("instance w1") != std::string::npos);
  auto db = open_db(db_path());
  BOOST_TEST(snapshot(db) == before);
}

BOOST_AUTO_TEST_CASE(committed_changes_survive_kill_9) {
  // A process killed with SIGKILL right after a put, without closing the
  // database, loses nothing: the WAL is replayed on the next open.
  auto path = db_path();
  auto pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: no Boost assertions here, only an exit code.
    auto db = model_db::open(path);
    if (!db.ok() || !db.value().put_instance(full_spec()).ok()
        || !db.value().set_enabled("w1", true, "").ok())
      _exit(3);
    raise(SIGKILL);
    _exit(4);
  }
  int status = 0;
  BOOST_REQUIRE(waitpid(pid, &status, 0) == pid);
  BOOST_REQUIRE_MESSAGE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                        "child did not die of SIGKILL, status " << status);
  // The WAL is still there: the child never closed (and checkpointed) it.
  BOOST_TEST(std::filesystem::exists(path + "-wal"));
  auto db = open_db(path);
  auto got = db.get_instance("w1");
  BOOST_REQUIRE(got.ok());
  auto expected = full_spec();
  expected.enabled = true;
  expected.disabled_reason.clear();
  BOOST_TEST((got.value() == expected), render(got.value()));
}

BOOST_AUTO_TEST_CASE(schema_version_is_set_and_migrations_run_once) {
  // A new file gets every migration and the latest version; reopening
  // applies none and keeps the data; the journal is WAL.
  BOOST_TEST(model_db::latest_schema_version() >= 1);
  std::string before;
  {
    auto db = open_db(db_path());
    BOOST_TEST(db.migrations_applied() == model_db::latest_schema_version());
    auto v = db.schema_version();
    BOOST_REQUIRE(v.ok());
    BOOST_TEST(v.value() == model_db::latest_schema_version());
    populate(db);
    before = snapshot(db);
  }
  for (int i = 0; i < 2; ++i) {
    auto db = open_db(db_path());
    BOOST_TEST(db.migrations_applied() == 0);
    BOOST_TEST(db.schema_version().value()
               == model_db::latest_schema_version());
    BOOST_TEST(snapshot(db) == before);
  }
  sqlite3* raw = nullptr;
  BOOST_REQUIRE(sqlite3_open(db_path().c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  BOOST_REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st,
                                   nullptr)
                == SQLITE_OK);
  BOOST_REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  BOOST_TEST(std::string{reinterpret_cast<const char*>(
               sqlite3_column_text(st, 0))}
             == "wal");
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

BOOST_AUTO_TEST_CASE(a_file_from_a_newer_schema_is_refused) {
  // A user_version beyond this build's migrations fails to open, and the
  // file is left as it was.
  { open_db(db_path()); }
  sqlite3* raw = nullptr;
  BOOST_REQUIRE(sqlite3_open(db_path().c_str(), &raw) == SQLITE_OK);
  BOOST_REQUIRE(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr,
                             nullptr, nullptr)
                == SQLITE_OK);
  sqlite3_close(raw);
  auto db = model_db::open(db_path());
  BOOST_REQUIRE(!db.ok());
  BOOST_TEST((db.error().fault == model_fault::storage));
  BOOST_TEST(db.error().text.find("newer") != std::string::npos,
             db.error().text);
  raw = nullptr;
  BOOST_REQUIRE(sqlite3_open(db_path().c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, nullptr);
  BOOST_REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  BOOST_TEST(sqlite3_column_int(st, 0) == 99);
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

BOOST_AUTO_TEST_CASE(bad_names_are_rejected_and_change_nothing) {
  // Every operation refuses an invalid app, queue or instance name as
  // invalid, and the model is exactly as before.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto bad_spec = small_spec("../etc", "shop");
  auto bad_app_spec = small_spec("w9", "a/b");
  auto bad_queue_spec = small_spec("w9", "shop");
  bad_queue_spec.queues = {"ok", "bad queue"};
  auto bad_broker_spec = small_spec("w9", "shop");
  bad_broker_spec.broker = "nowhere";
  std::vector<model_error> errors;
  auto keep = [&](auto&& r) {
    BOOST_TEST(!r.ok());
    if (!r.ok())
      errors.push_back(r.error());
  };
  keep(db.put_app("", ""));
  keep(db.put_app("-rf", ""));
  keep(db.put_app("shop", "not a broker"));
  keep(db.put_queue("shop", "a;b"));
  keep(db.put_queue("sh op", "q"));
  keep(db.delete_queue("shop", "$(id)"));
  keep(db.delete_app("a/b"));
  keep(db.list_queues(".."));
  keep(db.get_app(std::string(65, 'x')));
  keep(db.put_instance(bad_spec));
  keep(db.put_instance(bad_app_spec));
  keep(db.put_instance(bad_queue_spec));
  keep(db.put_instance(bad_broker_spec));
  keep(db.get_instance("a\nb"));
  keep(db.delete_instance("_x"));
  keep(db.set_enabled("a b", false, "x"));
  auto relative = small_spec("w9", "shop");
  relative.launch_overrides = R"({"program": "bin/worker"})";
  keep(db.put_instance(relative));
  auto walks_out = small_spec("w9", "shop");
  walks_out.launch_overrides = R"({"cwd": "/srv/../etc"})";
  keep(db.put_instance(walks_out));
  BOOST_TEST(errors.size() == 18u);
  for (auto& e : errors) {
    BOOST_TEST((e.fault == model_fault::invalid), e.text);
    BOOST_TEST(!e.text.empty());
  }
  BOOST_TEST(snapshot(db) == before);
}

BOOST_AUTO_TEST_CASE(max_below_min_is_rejected_and_changes_nothing) {
  // A new instance, or a replacement of an existing one, with max < min is
  // refused; neither the model nor the existing instance changes.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto fresh = small_spec("w9", "newapp");
  fresh.max_concurrency = 1;
  fresh.min_concurrency = 2;
  auto r = db.put_instance(fresh);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().fault == model_fault::invalid));
  BOOST_TEST(r.error().text.find("less than min_concurrency")
             != std::string::npos);
  auto replace = full_spec();
  replace.max_concurrency = 2;
  replace.min_concurrency = 5;
  BOOST_TEST(!db.put_instance(replace).ok());
  BOOST_TEST(snapshot(db) == before);
  // Not even the implicit app was created.
  BOOST_TEST(!db.get_app("newapp").ok());
}

BOOST_AUTO_TEST_CASE(duplicate_queue_is_rejected_and_changes_nothing) {
  // Declaring a queue an app already has is a conflict; the same name in
  // another app is fine.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto r = db.put_queue("shop", "orders");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().fault == model_fault::conflict));
  BOOST_TEST(r.error().text.find("already exists") != std::string::npos);
  BOOST_TEST(snapshot(db) == before);
  BOOST_TEST(db.put_queue("empty", "orders").ok());
}

BOOST_AUTO_TEST_CASE(queue_ops_on_unknown_app_or_queue_are_rejected) {
  // put, list and delete on an app not in the model, and delete of an
  // undeclared queue, fail as not found and change nothing.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto put = db.put_queue("ghost", "q");
  BOOST_REQUIRE(!put.ok());
  BOOST_TEST((put.error().fault == model_fault::not_found));
  auto list = db.list_queues("ghost");
  BOOST_REQUIRE(!list.ok());
  BOOST_TEST((list.error().fault == model_fault::not_found));
  auto del = db.delete_queue("ghost", "orders");
  BOOST_REQUIRE(!del.ok());
  BOOST_TEST((del.error().fault == model_fault::not_found));
  auto del_q = db.delete_queue("shop", "nope");
  BOOST_REQUIRE(!del_q.ok());
  BOOST_TEST((del_q.error().fault == model_fault::not_found));
  BOOST_TEST(snapshot(db) == before);
  BOOST_TEST(!db.get_app("ghost").ok());
}

BOOST_AUTO_TEST_CASE(app_with_instances_cannot_be_deleted) {
  // delete_app refuses while instances use the app; once they are gone it
  // deletes the app with its queues.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto r = db.delete_app("shop");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().fault == model_fault::conflict));
  BOOST_TEST(r.error().text.find("2 instances") != std::string::npos,
             r.error().text);
  BOOST_TEST(snapshot(db) == before);
  auto unknown = db.delete_app("ghost");
  BOOST_REQUIRE(!unknown.ok());
  BOOST_TEST((unknown.error().fault == model_fault::not_found));
  BOOST_TEST(snapshot(db) == before);
  BOOST_REQUIRE(db.delete_instance("w1").ok());
  BOOST_REQUIRE(db.delete_instance("w2").ok());
  BOOST_REQUIRE(db.delete_app("shop").ok());
  BOOST_TEST(db.list_apps().value() == std::vector<std::string>{"empty"});
  // Its queues went with it: a new app of that name starts empty.
  BOOST_REQUIRE(db.put_app("shop", "").ok());
  BOOST_TEST(db.list_queues("shop").value().empty());
}

BOOST_AUTO_TEST_CASE(unknown_instance_cannot_be_enabled_or_deleted) {
  // set_enabled, delete and extra-args on a valid but unknown name fail as
  // not found and change nothing.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto dis = db.set_enabled("ghost", false, "why");
  BOOST_REQUIRE(!dis.ok());
  BOOST_TEST((dis.error().fault == model_fault::not_found));
  BOOST_TEST(!db.set_enabled("ghost", true, "").ok());
  auto del = db.delete_instance("ghost");
  BOOST_REQUIRE(!del.ok());
  BOOST_TEST((del.error().fault == model_fault::not_found));
  BOOST_TEST(!db.get_instance("ghost").ok());
  BOOST_TEST(snapshot(db) == before);
}

BOOST_AUTO_TEST_CASE(launch_fields_execve_cannot_carry_are_rejected) {
  // A NUL byte in an argument, a bad or reserved environment key, a
  // process with queues or without a program: refused as invalid.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  for (auto overrides :
       {std::string{R"({"args": ["ok", "a\u0000b"]})"},
        std::string{R"({"env": {"1X": "y"}})"},
        std::string{R"({"env": {"CYME_APP": "y"}})"},
        std::string{R"({"env": {"X": 1}})"},
        std::string{R"({"kind": "process", "program": "/bin/true"})"},
        std::string{R"({"kind": "daemon"})"},
        std::string{R"({"stop_signal": "KILL"})"},
        std::string{R"({"stop_grace_s": -1})"},
        std::string{R"({"args": ["--broker=evil:1"]})"},
        std::string{"not json"}}) {
    auto w2 = small_spec("w2", "shop");
    w2.launch_overrides = overrides;
    auto r = db.put_instance(w2);
    BOOST_REQUIRE_MESSAGE(!r.ok(), overrides);
    BOOST_TEST((r.error().fault == model_fault::invalid), r.error().text);
  }
  auto no_program = small_spec("w3", "shop");
  no_program.queues.clear();
  no_program.launch_overrides = R"({"kind": "process"})";
  BOOST_TEST(!db.put_instance(no_program).ok());
  BOOST_TEST(snapshot(db) == before);
}

BOOST_AUTO_TEST_CASE(migration_moves_extra_args_into_the_launch) {
  // A version 1 file, with an instance's extra_args set, opens at the
  // latest version with those arguments as its launch args.
  sqlite3* raw = nullptr;
  BOOST_REQUIRE(sqlite3_open(db_path().c_str(), &raw) == SQLITE_OK);
  auto exec = [&](const char* sql) {
    BOOST_REQUIRE_MESSAGE(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr)
                            == SQLITE_OK,
                          sqlite3_errmsg(raw));
  };
  exec("CREATE TABLE apps (name TEXT NOT NULL PRIMARY KEY, broker TEXT NOT "
       "NULL DEFAULT '') WITHOUT ROWID;"
       "CREATE TABLE brokers (name TEXT NOT NULL PRIMARY KEY, settings TEXT "
       "NOT NULL DEFAULT '{}') WITHOUT ROWID;"
       "CREATE TABLE queues (app TEXT NOT NULL REFERENCES apps(name) ON "
       "DELETE CASCADE, name TEXT NOT NULL, PRIMARY KEY (app, name)) WITHOUT "
       "ROWID;"
       "CREATE TABLE instances (name TEXT NOT NULL PRIMARY KEY, app TEXT NOT "
       "NULL REFERENCES apps(name) ON DELETE RESTRICT, max_concurrency "
       "INTEGER NOT NULL, min_concurrency INTEGER NOT NULL, enabled INTEGER "
       "NOT NULL CHECK (enabled IN (0, 1)), broker TEXT NOT NULL DEFAULT '', "
       "disabled_reason TEXT NOT NULL DEFAULT '', extra_args TEXT NOT NULL "
       "DEFAULT '[]' CHECK (json_valid(extra_args) AND json_type(extra_args) "
       "= 'array'), CHECK (min_concurrency >= 1 AND max_concurrency >= "
       "min_concurrency AND max_concurrency <= 4294967295)) WITHOUT ROWID;"
       "CREATE INDEX instances_by_app ON instances(app);"
       "CREATE TABLE instance_queues (instance TEXT NOT NULL REFERENCES "
       "instances(name) ON DELETE CASCADE, position INTEGER NOT NULL, queue "
       "TEXT NOT NULL, PRIMARY KEY (instance, position), UNIQUE (instance, "
       "queue)) WITHOUT ROWID;"
       "INSERT INTO apps VALUES ('shop', '');"
       "INSERT INTO instances VALUES ('w1', 'shop', 4, 2, 1, '', '', "
       "'[\"--exec\", \"/bin/cat\"]');"
       "INSERT INTO instances VALUES ('w2', 'shop', 1, 1, 0, '', 'off', '[]');"
       "INSERT INTO instance_queues VALUES ('w1', 0, 'orders');"
       "PRAGMA user_version = 1;");
  sqlite3_close(raw);
  auto db = open_db(db_path());
  BOOST_TEST(db.migrations_applied() == model_db::latest_schema_version() - 1);
  auto w1 = db.get_instance("w1");
  BOOST_REQUIRE(w1.ok());
  BOOST_TEST(w1.value().launch.args
             == (std::vector<std::string>{"--exec", "/bin/cat"}));
  BOOST_TEST(w1.value().queues == std::vector<std::string>{"orders"});
  BOOST_TEST(w1.value().max_concurrency == 4u);
  auto w2 = db.get_instance("w2");
  BOOST_REQUIRE(w2.ok());
  BOOST_TEST(w2.value().launch.args.empty());
  BOOST_TEST(w2.value().disabled_reason == "off");
}

BOOST_AUTO_TEST_CASE(disabling_records_the_reason_and_enabling_clears_it) {
  // set_enabled(false, reason) persists both; set_enabled(true) clears the
  // reason whatever is passed.
  auto db = open_db(db_path());
  populate(db);
  auto off = db.set_enabled("w2", false, "restarted too often");
  BOOST_REQUIRE(off.ok());
  BOOST_TEST(!off.value().enabled);
  BOOST_TEST(off.value().disabled_reason == "restarted too often");
  BOOST_TEST(db.get_instance("w2").value().disabled_reason
             == "restarted too often");
  auto on = db.set_enabled("w2", true, "stale text");
  BOOST_REQUIRE(on.ok());
  BOOST_TEST(on.value().enabled);
  BOOST_TEST(on.value().disabled_reason == "");
  auto stored = db.get_instance("w2").value();
  BOOST_TEST(stored.enabled);
  BOOST_TEST(stored.disabled_reason == "");
  // The rest of the spec is untouched.
  BOOST_TEST(stored.queues == std::vector<std::string>{"q1"});
}

BOOST_AUTO_TEST_CASE(a_listing_shows_every_write_of_every_connection) {
  // The listing is kept between writes, so each one must show: writes
  // through this connection, an app's new launch defaults, and commits of
  // another connection (another process, such as the CLI, on the file).
  auto db = open_db(db_path());
  populate(db);
  BOOST_TEST(names_of(db.list_instances().value())
             == (std::vector<std::string>{"w1", "w2"}));
  BOOST_TEST(names_of(db.list_instances().value())
             == (std::vector<std::string>{"w1", "w2"}));
  BOOST_REQUIRE(db.set_enabled("w2", false, "by hand").ok());
  BOOST_TEST(!db.list_instances().value()[1].enabled);
  {
    auto other = open_db(db_path());
    BOOST_REQUIRE(other.put_instance(small_spec("w3", "shop")).ok());
    BOOST_TEST(names_of(db.list_instances().value())
               == (std::vector<std::string>{"w1", "w2", "w3"}));
    BOOST_REQUIRE(other.set_enabled("w2", true, "").ok());
    BOOST_TEST(db.list_instances().value()[1].enabled);
    BOOST_REQUIRE(other.delete_instance("w1").ok());
  }
  BOOST_TEST(names_of(db.list_instances().value())
             == (std::vector<std::string>{"w2", "w3"}));
  BOOST_TEST(db.list_instances().value()[1].launch.stop_signal == "TERM");
  BOOST_REQUIRE(
    db.put_app("shop", "localhost:9092", R"({"stop_signal": "HUP"})").ok());
  BOOST_TEST(db.list_instances().value()[1].launch.stop_signal == "HUP");
  BOOST_REQUIRE(db.delete_instance("w3").ok());
  BOOST_TEST(names_of(db.list_instances().value())
             == std::vector<std::string>{"w2"});
}

BOOST_AUTO_TEST_CASE(get_instances_returns_found_ones_in_request_order) {
  // Unknown and invalid names are skipped, repeats answered once, and the
  // found ones come back in the order asked, not sorted.
  auto db = open_db(db_path());
  populate(db);
  BOOST_REQUIRE(db.put_instance(small_spec("w3", "shop")).ok());
  auto got = db.get_instances({"w3", "ghost", "w1", "bad name", "w3", "w2"});
  BOOST_REQUIRE(got.ok());
  BOOST_TEST(names_of(got.value())
             == (std::vector<std::string>{"w3", "w1", "w2"}));
  BOOST_TEST((got.value()[1] == full_spec()));
  auto none = db.get_instances({"ghost"});
  BOOST_REQUIRE(none.ok());
  BOOST_TEST(none.value().empty());
}

BOOST_AUTO_TEST_CASE(get_instances_after_a_listing_shows_every_write) {
  // Answered from the kept listing, or the specs read before, while nothing
  // was written: the same rules (order asked, repeats once, unknown and
  // invalid names skipped), and every write since, of this connection or
  // another, shows.
  auto db = open_db(db_path());
  populate(db);
  BOOST_REQUIRE(db.put_instance(small_spec("w3", "shop")).ok());
  for (int pass = 0; pass < 2; ++pass) {
    auto again = db.get_instances({"w2", "w1", "w2"});
    BOOST_REQUIRE(again.ok());
    BOOST_TEST(names_of(again.value()) == (std::vector<std::string>{"w2", "w1"}));
    BOOST_TEST((again.value()[1] == full_spec()));
  }
  BOOST_REQUIRE(db.set_enabled("w1", true, "").ok());
  BOOST_TEST(db.get_instances({"w1"}).value().at(0).enabled);
  BOOST_REQUIRE(
    db.set_enabled("w1", false, full_spec().disabled_reason).ok());
  BOOST_TEST((db.get_instances({"w1"}).value().at(0) == full_spec()));
  BOOST_REQUIRE(db.list_instances().ok());
  auto got = db.get_instances({"w3", "ghost", "w1", "bad name", "w3", "w2"});
  BOOST_REQUIRE(got.ok());
  BOOST_TEST(names_of(got.value())
             == (std::vector<std::string>{"w3", "w1", "w2"}));
  BOOST_TEST((got.value()[1] == full_spec()));
  BOOST_REQUIRE(db.set_enabled("w2", false, "by hand").ok());
  BOOST_TEST(!db.get_instances({"w2"}).value().at(0).enabled);
  BOOST_REQUIRE(db.list_instances().ok());
  {
    auto other = open_db(db_path());
    BOOST_REQUIRE(other.set_enabled("w2", true, "").ok());
    BOOST_TEST(db.get_instances({"w2"}).value().at(0).enabled);
    BOOST_REQUIRE(db.list_instances().ok());
    BOOST_REQUIRE(other.delete_instance("w1").ok());
    BOOST_TEST(db.get_instances({"w1"}).value().empty());
    BOOST_REQUIRE(db.list_instances().ok());
    BOOST_REQUIRE(
      other.put_app("shop", "localhost:9092", R"({"stop_signal": "HUP"})").ok());
  }
  BOOST_TEST(db.get_instances({"w3"}).value().at(0).launch.stop_signal
             == "HUP");
  BOOST_TEST(db.get_instances({"w3"}).value().at(0).enabled);
  BOOST_REQUIRE(open_db(db_path()).set_enabled("w3", false, "other").ok());
  BOOST_TEST(!db.get_instances({"w3"}).value().at(0).enabled);
}

BOOST_AUTO_TEST_CASE(queues_an_instance_consumes_are_queues_of_its_app) {
  // Putting an instance declares its queues in its app, once each.
  auto db = open_db(db_path());
  BOOST_REQUIRE(db.put_app("shop", "").ok());
  BOOST_REQUIRE(db.put_queue("shop", "orders").ok());
  BOOST_REQUIRE(db.put_instance(small_spec("w1", "shop")).ok());
  auto spec = small_spec("w2", "shop");
  spec.queues = {"orders", "returns"};
  BOOST_REQUIRE(db.put_instance(spec).ok());
  auto queues = db.list_queues("shop");
  BOOST_REQUIRE(queues.ok());
  auto has = [&](const std::string& q) {
    return std::count(queues.value().begin(), queues.value().end(), q);
  };
  BOOST_TEST(has("orders") == 1);
  BOOST_TEST(has("returns") == 1);
}

BOOST_AUTO_TEST_CASE(sql_injection_is_inert) {
  // Injection-looking names fail validation; injection-looking free text is
  // bound as a parameter and stored verbatim. Every table stays intact.
  auto db = open_db(db_path());
  populate(db);
  auto before = snapshot(db);
  auto queues_before = db.list_queues("shop").value().size();
  std::string evil = "a';drop table instances;--";
  BOOST_TEST(!db.put_app(evil, "").ok());
  BOOST_TEST(!db.put_queue("shop", evil).ok());
  BOOST_TEST(!db.put_instance(small_spec(evil, "shop")).ok());
  BOOST_TEST(!db.put_instance(small_spec("w9", evil)).ok());
  BOOST_TEST(!db.delete_instance(evil).ok());
  BOOST_TEST(!db.delete_app(evil).ok());
  BOOST_TEST(db.get_instances({evil, "w1"}).value().size() == 1u);
  BOOST_TEST(snapshot(db) == before);
  std::string evil_reason = "x'); DROP TABLE instances; --";
  auto off = db.set_enabled("w1", false, evil_reason);
  BOOST_REQUIRE(off.ok());
  BOOST_TEST(db.get_instance("w1").value().disabled_reason == evil_reason);
  auto w2 = small_spec("w2", "shop");
  w2.launch_overrides = R"({"args": ["\"]; DROP TABLE apps; --"]})";
  BOOST_REQUIRE(db.put_instance(w2).ok());
  BOOST_TEST(db.get_instance("w2").value().launch.args.front()
             == "\"]; DROP TABLE apps; --");
  BOOST_TEST(db.list_instances().value().size() == 2u);
  BOOST_TEST(db.list_apps().value().size() == 2u);
  BOOST_TEST(db.list_queues("shop").value().size() == queues_before);
  BOOST_TEST(queues_before > 0u);
}

BOOST_AUTO_TEST_CASE(unopenable_path_fails_cleanly) {
  // A path that cannot hold a database fails with a storage error, no throw.
  for (std::string path : {std::string{"/proc/cyme.db"}, dir.string(),
                           (dir / "missing" / "model.db").string(),
                           std::string{}}) {
    auto db = model_db::open(path);
    BOOST_TEST(!db.ok(), "opened '" << path << "'");
    if (!db.ok())
      BOOST_TEST(!db.error().text.empty());
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(store_actor, temp_dir)

BOOST_AUTO_TEST_CASE(store_actor_serves_list_get_and_disable) {
  // Through the seam the supervisor uses: list, get and disable answer from
  // the file, disable persists, and an unknown instance is unknown_instance.
  {
    auto db = open_db(db_path());
    populate(db);
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto admin = spawn_model_store(sys, db_path());
  BOOST_REQUIRE_MESSAGE(admin, (admin ? "" : describe(admin.error())));
  model_store_actor store = *admin;
  caf::scoped_actor self{sys};
  std::optional<caf::error> failure;
  auto on_error = [&](caf::error& err) { failure = err; };

  std::vector<instance_spec> listed;
  self->request(store, 10s, list_atom::value)
    .receive([&](std::vector<instance_spec>& xs) { listed = std::move(xs); },
             on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(names_of(listed) == (std::vector<std::string>{"w1", "w2"}));
  BOOST_TEST((listed.front() == full_spec()));

  std::vector<instance_spec> got;
  self
    ->request(store, 10s, get_atom::value,
              std::vector<std::string>{"w2", "ghost"})
    .receive([&](std::vector<instance_spec>& xs) { got = std::move(xs); },
             on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(names_of(got) == std::vector<std::string>{"w2"});

  instance_spec disabled;
  self
    ->request(store, 10s, disable_atom::value, std::string{"w2"},
              std::string{"restarted too often"})
    .receive([&](instance_spec& x) { disabled = std::move(x); }, on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(disabled.name == "w2");
  BOOST_TEST(!disabled.enabled);
  BOOST_TEST(disabled.disabled_reason == "restarted too often");

  self
    ->request(store, 10s, disable_atom::value, std::string{"ghost"},
              std::string{"x"})
    .receive([&](instance_spec&) {}, on_error);
  BOOST_REQUIRE(failure.has_value());
  BOOST_TEST((failure->category() == caf::atom("cyme")));
  BOOST_TEST(failure->code()
             == static_cast<uint8_t>(cyme_errc::unknown_instance));
  BOOST_TEST(describe(*failure).find("ghost") != std::string::npos);

  // The admin interface: a queue of an unknown app is not_found, a bad
  // name invalid_argument, a good request lands.
  failure.reset();
  self->request(*admin, 10s, put_queue_atom::value, std::string{"ghost"},
                std::string{"q"})
    .receive([&](bool) {}, on_error);
  BOOST_REQUIRE(failure.has_value());
  BOOST_TEST(failure->code() == static_cast<uint8_t>(cyme_errc::not_found));
  failure.reset();
  self->request(*admin, 10s, put_queue_atom::value, std::string{"../x"},
                std::string{"q"})
    .receive([&](bool) {}, on_error);
  BOOST_REQUIRE(failure.has_value());
  BOOST_TEST(failure->code()
             == static_cast<uint8_t>(cyme_errc::invalid_argument));
  failure.reset();
  bool created = false;
  self->request(*admin, 10s, put_app_atom::value,
                app_record{"fresh", "localhost:9092", "{}"})
    .receive([&](bool x) { created = x; }, on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(created);

  self->send_exit(*admin, caf::exit_reason::user_shutdown);
  self->wait_for(*admin);
  // Persisted: a fresh connection sees the disable and the new app.
  auto db = open_db(db_path());
  auto w2 = db.get_instance("w2");
  BOOST_REQUIRE(w2.ok());
  BOOST_TEST(!w2.value().enabled);
  BOOST_TEST(w2.value().disabled_reason == "restarted too often");
  BOOST_TEST(db.get_app("fresh").value().broker == "localhost:9092");
}

BOOST_AUTO_TEST_CASE(store_keeps_the_app_directory_in_step) {
  // The directory starts with the file's apps and follows every committed
  // change of an app; a refused change leaves it as it was.
  {
    auto db = open_db(db_path());
    populate(db);
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto apps = std::make_shared<app_directory>();
  auto admin = spawn_model_store(sys, db_path(), apps);
  BOOST_REQUIRE_MESSAGE(admin, (admin ? "" : describe(admin.error())));
  auto broker = [&](const std::string& app) {
    return apps->broker_of(app).value_or("<none>");
  };
  BOOST_TEST(broker("shop") == "localhost:9092");
  BOOST_TEST(broker("empty") == "");
  BOOST_TEST(broker("made") == "<none>");
  caf::scoped_actor self{sys};
  std::optional<caf::error> failure;
  auto on_error = [&](caf::error& err) { failure = err; };
  // An instance of a new app makes the app, on the default broker.
  self->request(*admin, 10s, put_instance_atom::value, small_spec("m1", "made"))
    .receive([&](instance_spec&) {}, on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(broker("made") == "");
  self->request(*admin, 10s, put_app_atom::value,
                app_record{"made", "other:9092", "{}"})
    .receive([&](bool) {}, on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(broker("made") == "other:9092");
  // Refused: an app with instances is not deleted, and stays.
  self->request(*admin, 10s, delete_app_atom::value, std::string{"made"})
    .receive([&](bool) {}, on_error);
  BOOST_REQUIRE(failure.has_value());
  failure.reset();
  BOOST_TEST(broker("made") == "other:9092");
  self->request(*admin, 10s, delete_app_atom::value, std::string{"empty"})
    .receive([&](bool) {}, on_error);
  BOOST_REQUIRE(!failure);
  BOOST_TEST(broker("empty") == "<none>");
  self->send_exit(*admin, caf::exit_reason::user_shutdown);
  self->wait_for(*admin);
}

BOOST_AUTO_TEST_CASE(spawn_on_unwritable_path_fails) {
  // /proc cannot hold a file: spawn_model_store returns store_failure and
  // spawns nothing.
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto store = spawn_model_store(sys, "/proc/cyme.db");
  BOOST_REQUIRE(!store);
  BOOST_TEST((store.error().category() == caf::atom("cyme")));
  BOOST_TEST(store.error().code()
             == static_cast<uint8_t>(cyme_errc::store_failure));
  BOOST_TEST(describe(store.error()).find("/proc/cyme.db")
             != std::string::npos);
  BOOST_TEST(sys.registry().running() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
