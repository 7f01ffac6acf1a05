#include "transport/control_bus.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
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
#include "messages/topics.hpp"
#include "messages/wire.hpp"
#include "transport/command_batch.hpp"
#include "transport/kafka.hpp"
#include "transport/logging.hpp"
#include "transport/thread_name.hpp"

namespace cyme {

namespace {

using reply_atom = caf::atom_constant<caf::atom("reply")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using delivered_atom = caf::atom_constant<caf::atom("delivered")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;

constexpr log::logger bus_log{"control bus"};

/// When a relay last heard from its broker (a reply read or a command
/// delivered; steady clock, ns): a probe that fails while it still hears is
/// slow, not a sign of a dead broker.
using heard_clock = std::atomic<int64_t>;

int64_t steady_now_ns() {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

/// The threads of a relay: one reads its reply topic, one probes its
/// broker. They are apart so that a slow probe (a metadata request queued
/// behind a burst of commands) never holds replies back.
class reply_reader {
public:
  reply_reader(caf::actor_addr relay, kafka::config_map cfg, std::string topic,
               std::chrono::milliseconds interval, kafka::producer* prober,
               std::shared_ptr<heard_clock> heard)
    : relay_(std::move(relay)),
      cfg_(std::move(cfg)),
      topic_(std::move(topic)),
      interval_(interval),
      prober_(prober),
      heard_(std::move(heard)) {
    thread_ = std::thread{[this] { run(); }};
    name_thread(thread_, "cyme-bus");
    probe_thread_ = std::thread{[this] { probe(); }};
    name_thread(probe_thread_, "cyme-bus-probe");
  }

  ~reply_reader() {
    stop_ = true;
    if (probe_thread_.joinable())
      probe_thread_.join();
    if (thread_.joinable())
      thread_.join();
  }

private:
  template <class... Ts>
  void tell(Ts&&... xs) {
    if (auto relay = caf::actor_cast<caf::actor>(relay_))
      caf::anon_send(relay, std::forward<Ts>(xs)...);
  }

  /// Probes the broker once an interval and makes the reply topic once it
  /// answers.
  void probe() {
    auto next = std::chrono::steady_clock::now();
    while (!stop_) {
      auto now = std::chrono::steady_clock::now();
      if (now < next) {
        std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(next - now,
                                                         std::chrono::milliseconds{50}));
        continue;
      }
      next = now + interval_;
      bool ok = prober_->reachable(static_cast<int>(interval_.count()));
      // Replies or deliveries within the interval prove the broker serves:
      // the metadata request was only queued behind a burst.
      if (!ok
          && steady_now_ns() - heard_->load()
               < std::chrono::nanoseconds{interval_}.count())
        ok = true;
      std::string why;
      if (!ok) {
        // Served by poll: an authentication failure, a refused connection.
        prober_->poll(0);
        why = prober_->last_error();
        if (why.empty())
          why = "no answer to a metadata request within "
                + std::to_string(interval_.count()) + " ms";
      }
      if (ok && !topic_made_) {
        if (auto err = prober_->ensure_topics({topic_}, topics::control_partitions, 5000); err.empty()) {
          topic_made_ = true;
        } else {
          why = err;
          ok = false;
        }
      }
      tell(health_atom::value, ok, why);
    }
  }

  /// Reads replies once the topic exists; serves the producer's delivery
  /// reports.
  void run() {
    std::unique_ptr<kafka::topic_reader> reader;
    while (!stop_) {
      prober_->poll(0);
      if (!reader && topic_made_) {
        try {
          reader = std::make_unique<kafka::topic_reader>(cfg_, topic_);
          tell(ready_atom::value);
        } catch (const std::exception& e) {
          tell(health_atom::value, false, std::string{e.what()});
          std::this_thread::sleep_for(interval_);
        }
      }
      if (!reader) {
        // Not connected yet: wait for the probe.
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
        continue;
      }
      auto m = reader->poll(100);
      if (!m)
        continue;
      *heard_ = steady_now_ns();
      // Decoded here, beside the relay's work, and told in batches of what
      // has arrived: a round's thousands of replies cost the relay a few
      // messages, not one each.
      std::vector<std::string> ids;
      std::vector<control_reply> replies;
      for (size_t n = 0; m && n < max_replies_told; ++n) {
        if (auto r = decode_reply(m->value)) {
          ids.push_back(std::move(r.value->id));
          replies.push_back(std::move(r.value->reply));
        } else {
          bus_log.warn("dropped reply: " + r.error);
        }
        if (n + 1 < max_replies_told)
          m = reader->poll(0);
      }
      if (!ids.empty())
        tell(reply_atom::value, std::move(ids), std::move(replies));
    }
  }

  /// The most replies told to the relay in one message.
  static constexpr size_t max_replies_told = 512;

  caf::actor_addr relay_;
  kafka::config_map cfg_;
  std::string topic_;
  std::chrono::milliseconds interval_;
  kafka::producer* prober_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> topic_made_{false};
  std::shared_ptr<heard_clock> heard_;
  std::thread thread_;
  std::thread probe_thread_;
};

/// A caller of a one-instance command, and the series of its ping.
struct waiter {
  caf::response_promise promise;
  uint64_t series = 0;
};

struct pending_command {
  control_op op = control_op::ping;
  /// Whom to answer: the caller of the command, or, for commands coalesced
  /// into one, each instance's callers with its reply alone.
  caf::response_promise promise;
  bool coalesced = false;
  std::multimap<std::string, waiter> callers;
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
  /// Commands for one instance each, waiting to go out together (a flush
  /// is on its way whenever it is not empty).
  command_batch<waiter> batch;
  /// Pings of a series that ended unanswered, by command id: each
  /// unanswered instance's series, for a pong that comes late.
  std::map<std::string, std::map<std::string, uint64_t>> expired_pings;
  /// Those ids by when they ended, to forget them after a while.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>>
    expiry_order;
  /// When the last gathered commands went out.
  std::chrono::steady_clock::time_point last_flush{};
  /// Commands that arrived before the reply reader was positioned.
  std::vector<std::pair<std::string, std::string>> backlog;

  static inline const char* name = "cyme.kafka_relay";

  ~relay_state() {
    reader.reset();
  }
};

using relay_ptr = caf::stateful_actor<relay_state>*;

/// Ends a command with `err` for everyone waiting on it.
void fail(relay_ptr self, const std::string& id, const caf::error& err) {
  auto i = self->state.pending.find(id);
  if (i == self->state.pending.end())
    return;
  auto& p = i->second;
  if (p.coalesced)
    for (auto& [name, caller] : p.callers)
      caller.promise.deliver(err);
  else
    p.promise.deliver(err);
  self->state.pending.erase(i);
}

/// Keeps which instances of ping `id` did not answer, and the series of
/// each, for a minute (a start's schedule lasts about 30 s).
void remember_expired(relay_ptr self, const std::string& id,
                      std::map<std::string, uint64_t> unanswered) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  while (!st.expiry_order.empty()
         && now - st.expiry_order.front().first > std::chrono::minutes{1}) {
    st.expired_pings.erase(st.expiry_order.front().second);
    st.expiry_order.pop_front();
  }
  st.expired_pings[id] = std::move(unanswered);
  st.expiry_order.emplace_back(now, id);
}

/// Ends a command at its timeout (or once every destination replied) with
/// the replies that arrived; as failed when none of it was delivered.
void deliver(relay_ptr self, const std::string& id) {
  auto i = self->state.pending.find(id);
  if (i == self->state.pending.end())
    return;
  auto& p = i->second;
  if (auto& c = self->state.settings.counters; c && p.delivered)
    c->timeouts += p.waiting_for.size();
  if (!p.delivered && !p.waiting_for.empty())
    return fail(self, id,
                caf::make_error(cyme_errc::bus_failure,
                                "command not delivered in time: broker "
                                  + self->state.bootstrap + " unreachable"));
  if (p.coalesced) {
    std::map<std::string, uint64_t> unanswered;
    for (auto& [name, caller] : p.callers) {
      caller.promise.deliver(std::vector<control_reply>{});
      if (caller.series != 0)
        unanswered[name] = caller.series;
    }
    if (!unanswered.empty())
      remember_expired(self, id, std::move(unanswered));
  } else {
    p.promise.deliver(std::move(p.replies));
  }
  self->state.pending.erase(i);
}

/// A reply's round trip: from its command's sending to `now`.
int64_t micros_since(std::chrono::steady_clock::time_point sent,
                     std::chrono::steady_clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::microseconds>(now - sent)
    .count();
}

/// A pong to expired ping `id` from `reply.instance`: answers the callers
/// of a ping of the same series still waiting. True when it did.
bool take_late_pong(relay_ptr self, const std::string& id,
                    const control_reply& reply,
                    std::chrono::steady_clock::time_point now) {
  auto& st = self->state;
  auto e = st.expired_pings.find(id);
  if (e == st.expired_pings.end() || !reply.ok)
    return false;
  auto s = e->second.find(reply.instance);
  if (s == e->second.end())
    return false;
  auto series = s->second;
  e->second.erase(s);
  for (auto i = st.pending.begin(); i != st.pending.end(); ++i) {
    auto& p = i->second;
    if (!p.coalesced || p.op != control_op::ping)
      continue;
    auto [first, last] = p.callers.equal_range(reply.instance);
    bool answered = false;
    for (auto k = first; k != last;) {
      if (k->second.series != series) {
        ++k;
        continue;
      }
      auto late = reply;
      late.rtt_us = micros_since(p.sent_at, now);
      k->second.promise.deliver(std::vector<control_reply>{late});
      k = p.callers.erase(k);
      answered = true;
    }
    if (!answered)
      continue;
    if (p.callers.count(reply.instance) == 0)
      p.waiting_for.erase(reply.instance);
    if (p.waiting_for.empty()) {
      auto done = i->first;
      deliver(self, done);
    }
    return true;
  }
  return false;
}

/// A reply read at about `now`, to command `id`: answers its caller, or
/// waits for the rest of its command's replies.
void take_reply(relay_ptr self, const std::string& id, control_reply reply,
                std::chrono::steady_clock::time_point now) {
  auto i = self->state.pending.find(id);
  if (i == self->state.pending.end()) {
    // Late: it may still answer a later ping of its series; else dropped
    // (as a foreign reply is).
    if (take_late_pong(self, id, reply, now))
      if (auto& c = self->state.settings.counters)
        c->replies_received++;
    return;
  }
  auto& p = i->second;
  // A reply proves delivery even before the report arrives.
  p.delivered = true;
  if (p.waiting_for.erase(reply.instance) == 0)
    return; // duplicate or not asked
  auto took = now - p.sent_at;
  reply.rtt_us = micros_since(p.sent_at, now);
  if (auto& c = self->state.settings.counters) {
    c->replies_received++;
    c->round_trip.observe(std::chrono::duration<double>(took).count());
  }
  if (p.coalesced) {
    auto [first, last] = p.callers.equal_range(reply.instance);
    for (auto k = first; k != last; ++k)
      k->second.promise.deliver(std::vector<control_reply>{reply});
    p.callers.erase(first, last);
  } else {
    p.replies.push_back(std::move(reply));
  }
  if (p.waiting_for.empty())
    deliver(self, id);
}

void publish(relay_ptr self, const std::string& id, const std::string& bytes) {
  auto err = self->state.producer->produce(self->state.settings.control_topic,
                                           id, bytes);
  if (!err.empty())
    fail(self, id, caf::make_error(cyme_errc::bus_failure, "publish: " + err));
}

/// Registers `p` as command `id` and sends `cmd`: at once, or once the
/// reply reader is positioned; it ends at its timeout. While the broker is
/// down it is not sent and fails at its timeout, as an undelivered command
/// does: a caller that tries again (a ping schedule) then waits as long as
/// it would for a silent instance, and does not spend its whole schedule
/// in the first instant of an outage.
void send_command(relay_ptr self, pending_command p, const control_command& cmd) {
  auto& st = self->state;
  auto id = st.settings.branch_id + "-" + std::to_string(st.next_id++);
  p.waiting_for.insert(cmd.destinations.begin(), cmd.destinations.end());
  p.sent_at = std::chrono::steady_clock::now();
  st.pending.emplace(id, std::move(p));
  self->delayed_send(self, cmd.timeout, expire_atom::value, id);
  if (st.down)
    return;
  if (auto& c = st.settings.counters)
    c->commands_sent++;
  command_envelope env{id, reply_topic(st.settings.branch_id), cmd};
  // One message, or a few for a fleet too large to name in one.
  for (auto& bytes : encode_command_messages(env)) {
    if (st.ready)
      publish(self, id, bytes);
    else
      st.backlog.emplace_back(id, std::move(bytes));
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
  auto heard = std::make_shared<heard_clock>(0);
  st.producer = std::make_unique<kafka::producer>(
    producer_cfg, [me, heard](const std::string& id, const std::string& error) {
      if (error.empty())
        *heard = steady_now_ns();
      if (auto relay = caf::actor_cast<caf::actor>(me))
        caf::anon_send(relay, delivered_atom::value, id, error.empty());
    });
  auto reader_cfg = cfg;
  reader_cfg["fetch.wait.max.ms"]
    = std::to_string(st.settings.reply_fetch_wait_ms);
  st.reader = std::make_unique<reply_reader>(
    self->address(), reader_cfg, reply_topic(st.settings.branch_id),
    st.settings.health_interval, st.producer.get(), std::move(heard));
  return {
    [=](command_atom, control_command& cmd) -> caf::result<std::vector<control_reply>> {
      auto& st = self->state;
      if (cmd.destinations.empty())
        return std::vector<control_reply>{};
      if (cmd.destinations.size() == 1 && !st.down) {
        // An instance's own command (a start's pings, its stats, its
        // consumers) goes out with the same ones queued behind it: a fleet
        // starting at once costs a few commands, not several per instance.
        if (st.batch.empty()) {
          auto due = st.last_flush + st.settings.gather_window;
          auto now = std::chrono::steady_clock::now();
          if (due <= now)
            self->send(self, flush_atom::value);
          else
            self->delayed_send(self, due - now, flush_atom::value);
        }
        st.batch.add(cmd, waiter{self->make_response_promise(), cmd.series});
        return caf::delegated<std::vector<control_reply>>{};
      }
      pending_command p;
      p.promise = self->make_response_promise();
      send_command(self, std::move(p), cmd);
      return caf::delegated<std::vector<control_reply>>{};
    },
    [=](flush_atom) {
      auto& st = self->state;
      st.last_flush = std::chrono::steady_clock::now();
      for (auto& g : st.batch.take()) {
        pending_command p;
        p.op = g.command.op;
        p.coalesced = true;
        p.callers = std::move(g.callers);
        send_command(self, std::move(p), g.command);
      }
    },
    [=](reply_atom, std::vector<std::string>& ids,
        std::vector<control_reply>& replies) {
      auto now = std::chrono::steady_clock::now();
      for (size_t k = 0; k < ids.size() && k < replies.size(); ++k)
        take_reply(self, ids[k], std::move(replies[k]), now);
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
      fail(self, id,
           caf::make_error(cyme_errc::bus_failure, "command not delivered"));
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
        // Commands in flight end at their timeouts, with what arrived by
        // then or, when none was delivered, as failed.
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
  if (settings.gather_window.count() < 0)
    return caf::make_error(cyme_errc::invalid_argument,
                           "the gather window cannot be negative");
  return caf::actor_cast<control_bus_actor>(sys.spawn(router, settings));
}

} // namespace cyme
