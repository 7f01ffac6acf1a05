#include "transport/control_bus.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "messages/errors.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"
#include "transport/kafka.hpp"
#include "transport/logging.hpp"

namespace cyme {

namespace {

using reply_atom = caf::atom_constant<caf::atom("reply")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using delivered_atom = caf::atom_constant<caf::atom("delivered")>;

constexpr log::logger bus_log{"control bus"};

/// The thread that reads a relay's reply topic and probes its broker.
class reply_reader {
public:
  reply_reader(caf::actor_addr relay, kafka::config_map cfg, std::string topic,
               std::chrono::milliseconds interval, kafka::producer* prober)
    : relay_(std::move(relay)),
      cfg_(std::move(cfg)),
      topic_(std::move(topic)),
      interval_(interval),
      prober_(prober) {
    thread_ = std::thread{[this] { run(); }};
  }

  ~reply_reader() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

private:
  template <class... Ts>
  void tell(Ts&&... xs) {
    if (auto relay = caf::actor_cast<caf::actor>(relay_))
      caf::anon_send(relay, std::forward<Ts>(xs)...);
  }

  void run() {
    std::unique_ptr<kafka::topic_reader> reader;
    auto next_probe = std::chrono::steady_clock::now();
    while (!stop_) {
      auto now = std::chrono::steady_clock::now();
      if (now >= next_probe) {
        next_probe = now + interval_;
        bool ok = prober_->reachable(static_cast<int>(interval_.count()));
        std::string why;
        if (!ok) {
          // Served by poll: an authentication failure, a refused connection.
          prober_->poll(0);
          why = prober_->last_error();
          if (why.empty())
            why = "no answer to a metadata request within "
                  + std::to_string(interval_.count()) + " ms";
        }
        if (ok && !reader) {
          auto err = prober_->ensure_topics({topic_}, 1, 5000);
          if (err.empty()) {
            try {
              reader = std::make_unique<kafka::topic_reader>(cfg_, topic_);
              tell(ready_atom::value);
            } catch (const std::exception& e) {
              why = e.what();
              ok = false;
            }
          } else {
            why = err;
            ok = false;
          }
        }
        tell(health_atom::value, ok, why);
      }
      prober_->poll(0);
      if (!reader) {
        // Not connected yet: wait for the next probe.
        std::this_thread::sleep_until(
          std::min(next_probe, std::chrono::steady_clock::now()
                                 + std::chrono::milliseconds{100}));
        continue;
      }
      if (auto m = reader->poll(100))
        tell(reply_atom::value, std::move(m->value));
    }
  }

  caf::actor_addr relay_;
  kafka::config_map cfg_;
  std::string topic_;
  std::chrono::milliseconds interval_;
  kafka::producer* prober_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct pending_command {
  caf::response_promise promise;
  std::set<std::string> waiting_for;
  std::vector<control_reply> replies;
  /// Whether the broker took the command: silence means something only
  /// for a command that was delivered.
  bool delivered = false;
  std::chrono::steady_clock::time_point sent_at;
};

struct relay_state {
  control_bus_settings settings;
  /// The broker as specs name it (empty: the default broker).
  std::string key;
  /// Its bootstrap servers, for messages.
  std::string bootstrap;
  caf::actor router;
  std::unique_ptr<kafka::producer> producer;
  std::unique_ptr<reply_reader> reader;
  bool ready = false;
  bool down = false;
  int failures = 0;
  uint64_t next_id = 0;
  std::map<std::string, pending_command> pending;
  /// Commands that arrived before the reply reader was positioned.
  std::vector<std::pair<std::string, std::string>> backlog;

  static inline const char* name = "cyme.kafka_relay";

  ~relay_state() {
    reader.reset();
  }
};

using relay_ptr = caf::stateful_actor<relay_state>*;

void deliver(relay_ptr self, const std::string& id) {
  auto i = self->state.pending.find(id);
  if (i == self->state.pending.end())
    return;
  auto& p = i->second;
  if (auto& c = self->state.settings.counters; c && p.delivered)
    c->timeouts += p.waiting_for.size();
  if (!p.delivered && !p.waiting_for.empty())
    p.promise.deliver(caf::make_error(
      cyme_errc::bus_failure,
      "command not delivered in time: broker " + self->state.bootstrap
        + " unreachable"));
  else
    p.promise.deliver(std::move(p.replies));
  self->state.pending.erase(i);
}

void publish(relay_ptr self, const std::string& id, const std::string& bytes) {
  auto err = self->state.producer->produce(self->state.settings.control_topic,
                                           id, bytes);
  if (!err.empty()) {
    auto i = self->state.pending.find(id);
    if (i != self->state.pending.end()) {
      i->second.promise.deliver(
        caf::make_error(cyme_errc::bus_failure, "publish: " + err));
      self->state.pending.erase(i);
    }
  }
}

/// The bootstrap servers of a broker key (empty: the default broker).
std::string bootstrap_of(const control_bus_settings& settings,
                         const std::string& key) {
  return key.empty() ? settings.default_broker : key;
}

/// The properties of a broker's clients now.
kafka::config_map properties_for(const control_bus_settings& settings,
                                 const std::string& bootstrap) {
  return settings.properties ? settings.properties->for_broker(bootstrap)
                             : kafka::config_map{};
}

/// How often a broker's properties changed: read for every command, so it
/// does not copy them.
uint64_t properties_version(const control_bus_settings& settings,
                            const std::string& bootstrap) {
  return settings.properties ? settings.properties->version(bootstrap) : 0;
}

/// `down`: the broker was reported down by the relay this one replaces, so
/// its recovery is reported as such.
caf::behavior relay(relay_ptr self, control_bus_settings settings,
                    std::string key, caf::actor router, bool down) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.key = std::move(key);
  st.router = std::move(router);
  st.down = down;
  st.bootstrap = bootstrap_of(st.settings, st.key);
  auto cfg = kafka::base_config(st.bootstrap,
                                properties_for(st.settings, st.bootstrap));
  auto producer_cfg = cfg;
  // A command the broker did not take within seconds is stale: fail it
  // rather than deliver it late.
  producer_cfg["message.timeout.ms"] = "10000";
  // Commands are latency-bound: send each at once, no batching delay.
  producer_cfg["linger.ms"] = "0";
  auto me = self->address();
  st.producer = std::make_unique<kafka::producer>(
    producer_cfg, [me](const std::string& id, const std::string& error) {
      if (auto relay = caf::actor_cast<caf::actor>(me))
        caf::anon_send(relay, delivered_atom::value, id, error.empty());
    });
  auto reader_cfg = cfg;
  reader_cfg["fetch.wait.max.ms"]
    = std::to_string(st.settings.reply_fetch_wait_ms);
  st.reader = std::make_unique<reply_reader>(
    self->address(), reader_cfg, reply_topic(st.settings.branch_id),
    st.settings.health_interval, st.producer.get());
  return {
    [=](command_atom, control_command& cmd) -> caf::result<std::vector<control_reply>> {
      auto& st = self->state;
      if (st.down)
        return caf::make_error(cyme_errc::bus_failure,
                               "broker " + st.bootstrap + " unreachable");
      if (cmd.destinations.empty())
        return std::vector<control_reply>{};
      auto id = st.settings.branch_id + "-" + std::to_string(st.next_id++);
      command_envelope env{id, reply_topic(st.settings.branch_id), cmd};
      auto& p = st.pending[id];
      p.promise = self->make_response_promise();
      p.waiting_for.insert(cmd.destinations.begin(), cmd.destinations.end());
      p.sent_at = std::chrono::steady_clock::now();
      if (auto& c = st.settings.counters)
        c->commands_sent++;
      self->delayed_send(self, cmd.timeout, expire_atom::value, id);
      // One message, or a few for a fleet too large to name in one.
      for (auto& bytes : encode_command_messages(env)) {
        if (st.ready)
          publish(self, id, bytes);
        else
          st.backlog.emplace_back(id, std::move(bytes));
      }
      return caf::delegated<std::vector<control_reply>>{};
    },
    [=](reply_atom, const std::string& bytes) {
      auto r = decode_reply(bytes);
      if (!r) {
        bus_log.warn("dropped reply: " + r.error);
        return;
      }
      auto i = self->state.pending.find(r.value->id);
      if (i == self->state.pending.end())
        return; // late or foreign reply
      auto& p = i->second;
      // A reply proves delivery even before the report arrives.
      p.delivered = true;
      if (p.waiting_for.erase(r.value->reply.instance) == 0)
        return; // duplicate or not asked
      auto took = std::chrono::steady_clock::now() - p.sent_at;
      r.value->reply.rtt_us
        = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
      if (auto& c = self->state.settings.counters) {
        c->replies_received++;
        c->round_trip.observe(std::chrono::duration<double>(took).count());
      }
      p.replies.push_back(std::move(r.value->reply));
      if (p.waiting_for.empty())
        deliver(self, r.value->id);
    },
    [=](expire_atom, const std::string& id) { deliver(self, id); },
    [=](delivered_atom, const std::string& id, bool ok) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      if (ok) {
        i->second.delivered = true;
        return;
      }
      i->second.promise.deliver(
        caf::make_error(cyme_errc::bus_failure, "command not delivered"));
      self->state.pending.erase(i);
    },
    [=](ready_atom) {
      auto& st = self->state;
      st.ready = true;
      auto backlog = std::move(st.backlog);
      st.backlog.clear();
      for (auto& [id, bytes] : backlog)
        if (st.pending.count(id) > 0)
          publish(self, id, bytes);
    },
    [=](health_atom, bool ok, const std::string& why) {
      auto& st = self->state;
      st.producer->poll(0);
      if (ok) {
        st.failures = 0;
        if (st.down) {
          st.down = false;
          bus_log.info("broker " + st.bootstrap + " is back");
          self->send(st.router, broker_up_atom::value, st.key);
        }
        return;
      }
      if (++st.failures >= st.settings.health_failures && !st.down) {
        st.down = true;
        auto reason = st.bootstrap + ": " + why;
        bus_log.error("broker " + reason);
        self->send(st.router, broker_down_atom::value, st.key, reason);
        // Commands in flight cannot be answered now.
        for (auto& [id, p] : st.pending)
          p.promise.deliver(
            caf::make_error(cyme_errc::bus_failure, "broker unreachable"));
        st.pending.clear();
      }
    },
  };
}

/// A relay and what it was made with.
struct relay_entry {
  caf::actor actor;
  /// The version of its broker's properties it uses.
  uint64_t version = 0;
  /// Whether it reported its broker down (and not up since).
  bool down = false;
};

struct router_state {
  control_bus_settings settings;
  std::map<std::string, relay_entry> relays;
  std::vector<broker_listener> listeners;

  static inline const char* name = "cyme.control_bus";

  ~router_state() {
    for (auto& [key, r] : relays)
      caf::anon_send_exit(r.actor, caf::exit_reason::user_shutdown);
  }
};

using router_ptr = caf::stateful_actor<router_state>*;

/// The relay of broker `key`, made (again, when its properties changed
/// since) as needed.
caf::actor relay_for(router_ptr self, const std::string& key) {
  auto& st = self->state;
  auto version
    = properties_version(st.settings, bootstrap_of(st.settings, key));
  auto i = st.relays.find(key);
  if (i != st.relays.end() && i->second.version == version)
    return i->second.actor;
  bool down = false;
  if (i != st.relays.end()) {
    // Its commands in flight fail; the new relay takes over the broker's
    // health, so a broker down is reported up once the new one reaches it.
    down = i->second.down;
    self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
    bus_log.info("broker " + bootstrap_of(st.settings, key)
                 + ": client properties changed; reconnecting");
  }
  auto r = self->spawn(relay, st.settings, key,
                       caf::actor_cast<caf::actor>(self), down);
  st.relays[key] = relay_entry{r, version, down};
  return r;
}

/// The entry of the relay that sent the current message, unless it was
/// replaced since (a replaced relay's health no longer counts).
relay_entry* current_relay(router_ptr self, const std::string& key) {
  auto i = self->state.relays.find(key);
  if (i == self->state.relays.end()
      || i->second.actor.address() != self->current_sender())
    return nullptr;
  return &i->second;
}

caf::behavior router(router_ptr self, control_bus_settings settings) {
  self->state.settings = std::move(settings);
  relay_for(self, {});
  return {
    [=](command_atom a, control_command& cmd)
      -> caf::result<std::vector<control_reply>> {
      if (auto p = broker_problem(cmd.broker); !p.empty())
        return caf::make_error(cyme_errc::invalid_argument, p);
      auto r = relay_for(self, cmd.broker);
      return self->delegate(caf::actor_cast<control_bus_actor>(r), a,
                            std::move(cmd));
    },
    [=](subscribe_atom, broker_listener& l) {
      self->state.listeners.push_back(std::move(l));
    },
    [=](broker_down_atom a, std::string& key, std::string& reason) {
      auto* r = current_relay(self, key);
      if (r == nullptr)
        return;
      r->down = true;
      for (auto& l : self->state.listeners)
        self->send(l, a, key, reason);
    },
    [=](broker_up_atom a, std::string& key) {
      auto* r = current_relay(self, key);
      if (r == nullptr)
        return;
      r->down = false;
      for (auto& l : self->state.listeners)
        self->send(l, a, key);
    },
  };
}

} // namespace

std::string reply_topic(const std::string& branch_id) {
  return "cyme.reply." + branch_id;
}

caf::expected<control_bus_actor> spawn_control_bus(caf::actor_system& sys,
                                                   control_bus_settings settings) {
  if (settings.default_broker.empty())
    return caf::make_error(cyme_errc::invalid_argument,
                           "the control bus needs a default broker");
  if (auto p = broker_problem(settings.default_broker); !p.empty())
    return caf::make_error(cyme_errc::invalid_argument, p);
  if (auto p = name_problem("branch id", settings.branch_id); !p.empty())
    return caf::make_error(cyme_errc::invalid_argument, p);
  if (auto p = name_problem("control topic", settings.control_topic); !p.empty())
    return caf::make_error(cyme_errc::invalid_argument, p);
  if (settings.health_interval.count() <= 0 || settings.health_failures < 1
      || settings.reply_fetch_wait_ms < 1)
    return caf::make_error(cyme_errc::invalid_argument,
                           "health interval, failures and fetch wait must be "
                           "positive");
  return caf::actor_cast<control_bus_actor>(sys.spawn(router, settings));
}

} // namespace cyme
