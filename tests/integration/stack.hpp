#pragma once

/// The whole supervision stack with real parts, for integration tests: the
/// embedded Kafka cluster (in this process, so tests can take its broker
/// down) or, when CYME_TEST_KAFKA names one (HOST:PORT), a real broker that
/// deploy/kafka/kafka.sh runs in CYME_TEST_KAFKA_DIR; the SQLite model
/// store, the Kafka control bus, the process driver running real cyme-worker
/// processes, and the supervisor. Tests wait on conditions with deadlines,
/// never on fixed sleeps.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/supervisor.hpp"
#include "messages/errors.hpp"
#include "messages/wire.hpp"
#include "store/model_store.hpp"
#include "transport/control_bus.hpp"
#include "transport/kafka.hpp"
#include "transport/process_driver.hpp"

namespace cyme::test {

/// A fresh directory under /tmp, removed with everything in it.
struct temp_dir {
  temp_dir();
  ~temp_dir();
  std::filesystem::path path;
};

/// Polls `pred` until it holds or `limit` passed; returns whether it holds.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return true;
}

/// Whether process `pid` no longer runs: gone, or a zombie not reaped yet
/// (one whose parent died is reaped by init, if at all).
bool has_ended(int32_t pid);

/// Settings for tests: the seed's rules, shorter waits.
supervisor_settings test_settings();

class stack {
public:
  /// `worker_program`: the cyme-worker executable to run.
  /// `broker_health_interval`: how often the bus asks its broker for
  /// metadata, and how long it waits for the answer before counting a
  /// failure (two in a row: broker down). `standby_workers`: the driver's
  /// standby workers kept ready.
  explicit stack(supervisor_settings settings = test_settings(),
                 std::string worker_program = CYME_WORKER_PROGRAM,
                 std::chrono::milliseconds broker_health_interval
                 = std::chrono::milliseconds{500},
                 uint32_t standby_workers = 0);
  ~stack();

  // -- the model ---------------------------------------------------------------

  /// Puts an instance in the model.
  instance_spec put(const std::string& name, std::vector<std::string> queues,
                    uint32_t max = 1, uint32_t min = 1);

  /// Replaces a spec in the model.
  void put(const instance_spec& spec);

  instance_spec get(const std::string& name);

  // -- the supervisor ----------------------------------------------------------

  std::vector<action_report> verify(std::vector<std::string> names,
                                    bool ratelimit = false);
  std::vector<action_report> shutdown(std::vector<std::string> names);
  instance_status status(const std::string& name);
  supervisor_status supervisor();
  size_t events(event_kind kind, const std::string& instance = {});
  /// Every event so far, in order.
  std::vector<supervisor_event> event_log();

  // -- the instances -----------------------------------------------------------

  /// Sends a command through the bus and returns the replies.
  std::vector<control_reply> command(control_command cmd);
  bool pings(const std::string& name,
             std::chrono::milliseconds timeout = std::chrono::seconds{1});
  /// The instance's stats; fails the test when it does not answer.
  worker_stats stats(const std::string& name);
  /// The pid the driver trusts for the instance, or 0.
  int32_t pid_of(const std::string& name);

  // -- tasks -------------------------------------------------------------------

  /// Produces `n` tasks on `queue`; returns their ids.
  std::vector<std::string> send_tasks(const std::string& queue, size_t n,
                                      const std::string& handler,
                                      const std::string& args_json);
  /// Produces raw bytes on `queue` (malformed tasks).
  void send_raw(const std::string& queue, const std::string& key,
                const std::string& bytes);
  /// Reads the results topic into `results` (by task id, every delivery).
  void collect_results(std::chrono::milliseconds for_at_most);
  std::map<std::string, std::vector<task_result>> results;
  /// Waits until every id has a result; false on timeout.
  bool wait_for_results(const std::vector<std::string>& ids,
                        std::chrono::milliseconds limit);

  /// Sum of offsets the app's group for `queue` committed, counted from the
  /// end the topic had when this stack first sent tasks to it: a real broker
  /// keeps topics and commits from earlier tests and runs.
  int64_t committed(const std::string& queue);

  // -- the broker --------------------------------------------------------------

  /// Bootstrap servers of the broker the stack runs on.
  std::string bootstrap() const;

  /// Whether the stack runs on a real broker (CYME_TEST_KAFKA), not on the
  /// embedded cluster.
  bool real_kafka() const {
    return !cluster.has_value();
  }

  /// Takes the broker down: the embedded cluster's broker closes and refuses
  /// connections; a real broker is paused with SIGSTOP (`kafka.sh pause
  /// $CYME_TEST_KAFKA_DIR`), so requests hang rather than fail. The stack
  /// brings it back up when it goes away.
  void broker_down();
  /// Brings the broker back (`kafka.sh resume` for a real one).
  void broker_up();

  /// Makes the embedded broker answer every request `rtt` late (0: on time
  /// again): a lagging bus that still takes every request. Throws on a real
  /// broker, which cannot be made to lag.
  void lag_broker(std::chrono::milliseconds rtt);

  /// The embedded cluster; empty when the stack runs on a real broker.
  std::optional<kafka::embedded_cluster> cluster;
  temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  model_admin_actor store;
  control_bus_actor bus;
  /// What the driver was spawned with.
  process_driver_settings driver_settings;
  process_driver_actor driver;
  /// The supervisor itself: the stack subscribes to its events.
  supervisor_core sup;

private:
  template <class T, class Handle, class... Ts>
  T ask(const Handle& dest, Ts&&... xs);

  caf::actor listener_;
  /// CYME_TEST_KAFKA and CYME_TEST_KAFKA_DIR; empty on the embedded cluster.
  std::string real_bootstrap_;
  std::string real_dir_;
  bool broker_is_down_ = false;
  /// Per queue: the sum of its partitions' end offsets before this stack
  /// first produced to it.
  std::map<std::string, int64_t> baseline_;
  kafka::producer producer_;
  std::unique_ptr<kafka::topic_reader> results_reader_;
  /// What the supervisor reported, shared with the actor that hears it:
  /// that actor may still hear an event while the stack goes away.
  struct heard_events {
    std::mutex mtx;
    std::vector<supervisor_event> events;
  };
  std::shared_ptr<heard_events> events_ = std::make_shared<heard_events>();
};

} // namespace cyme::test
