#pragma once

/// Branches find each other through the bus: each one announces itself on
/// the presence topic (id, HTTP URL, node address, instances, load, and
/// when it will announce next) and follows everyone's announcements. A
/// branch not heard from for a few of its own announced intervals is no
/// longer live; one that stops in order says it is leaving and drops out
/// at once. The view includes this branch.
///
/// The interval grows with the cluster so that the cluster as a whole
/// announces at a bounded rate: what each branch reads stays constant, and
/// the deliveries summed over all branches grow as the number of branches,
/// not as its square.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "messages/topics.hpp"
#include "transport/kafka.hpp"
#include "transport/logging.hpp"

namespace cyme {

/// One branch as its announcements describe it.
struct branch_info {
  std::string id;
  /// Base URL of its HTTP API, e.g. "http://10.0.0.2:8000".
  std::string http;
  /// Its middleman address ("" when it publishes none).
  std::string node;
  uint32_t instances = 0;
  /// 1-minute load average of its host.
  double load = 0;
  /// How long until its next announcement; zero when it did not say (the
  /// default interval is assumed then).
  std::chrono::milliseconds every{0};
  /// It is stopping: drop it from the view now.
  bool leaving = false;
};

std::string encode_presence(const branch_info& info);
std::optional<branch_info> decode_presence(const std::string& bytes,
                                           std::string* error = nullptr);

struct presence_settings {
  std::string topic = topics::presence;
  /// The shortest interval between two announcements of a branch.
  std::chrono::milliseconds interval{2000};
  /// The announcements a second of the whole cluster, at most: with n live
  /// branches each announces every max(interval, n / cluster_rate). The
  /// default keeps 2 s up to ten branches; 0 keeps `interval` at any size.
  double cluster_rate = 5;
  /// A branch is no longer live once this many of the intervals it
  /// announced have passed without a word from it.
  int silence_intervals = 3;
  /// How far back a starting branch reads announcements, so it knows the
  /// cluster at once rather than after everyone's next announcement (on a
  /// broker that looks up offsets by time).
  std::chrono::milliseconds history{120000};
};

/// What the announcements say, at a given time: who is live, and how often
/// this branch should announce. No I/O and no clock of its own.
class presence_view {
public:
  using time_point = std::chrono::steady_clock::time_point;

  presence_view(presence_settings settings, std::string self_id);

  /// An announcement made at `at` (this branch's own ones included).
  void heard(const branch_info& info, time_point at);

  /// Branches heard from within their silence at `now`, by id, each with
  /// the interval it is judged by.
  std::vector<branch_info> live(time_point now) const;

  /// How long until this branch's next announcement, with `n` branches
  /// live (this one included).
  std::chrono::milliseconds announce_every(std::size_t n) const;

  /// Counts an instance just placed on `id`, before its next announcement
  /// says so.
  void placed_on(const std::string& id);

  /// Takes `id` out of the view until it announces again: a connection to
  /// it was refused or timed out, so it is gone sooner than its silence
  /// says. Whether it was live; this branch is never taken out.
  bool unreachable(const std::string& id, time_point now);

private:
  struct entry {
    branch_info info;
    time_point at;
    bool unreachable = false;
  };
  /// The interval `e` is judged by: the one it announced, else the default.
  std::chrono::milliseconds every_of(const entry& e) const;
  /// Whether `e` was heard from within its silence at `now`.
  bool within_silence(const entry& e, time_point now) const;
  presence_settings settings_;
  std::string self_id_;
  std::map<std::string, entry> seen_;
};

/// Where in each interval this branch's rounds start, as an offset on the
/// wall clock (time since the epoch modulo the interval): the live
/// branches take equal turns in the order of their ids, slot k of n
/// starting k/n of an interval in, so branches sharing a broker and a
/// machine do not probe at once. Zero when `self` is not among `ids`.
std::chrono::nanoseconds round_slot(const std::vector<std::string>& ids,
                                    const std::string& self,
                                    std::chrono::nanoseconds interval);

/// The same offset on a clock that reads `behind` less than the wall clock
/// (the steady clock the actors use), in [0, interval).
std::chrono::nanoseconds offset_on_clock(std::chrono::nanoseconds wall_offset,
                                         std::chrono::nanoseconds behind,
                                         std::chrono::nanoseconds interval);

class presence {
public:
  /// `describe` is called on every announcement for this branch's current
  /// figures (from the announcing thread). `members`, when given, is called
  /// from the same thread with the ids of the live branches (sorted, this
  /// one included) whenever they differ from those it was last given.
  presence(kafka::config_map cfg, presence_settings settings,
           std::function<branch_info()> describe,
           std::function<void(const std::vector<std::string>&)> members = {});
  ~presence();
  presence(const presence&) = delete;
  presence& operator=(const presence&) = delete;

  /// Branches heard from within their silence, this one included, by id.
  std::vector<branch_info> live() const;

  /// The live branch with the fewest instances (then the lowest load, then
  /// the smallest id).
  std::optional<branch_info> least_loaded() const;

  /// Counts an instance just placed on `id`, before its next announcement
  /// says so, so a burst of placements spreads.
  void placed_on(const std::string& id);

  /// A connection to branch `id` failed: it leaves the view until it
  /// announces again (logged once).
  void unreachable(const std::string& id);

  const std::string& self_id() const {
    return self_id_;
  }

private:
  void run();
  /// Tells `members_` the live ids when they changed since `told`.
  void tell_members(std::vector<std::string>& told);

  kafka::config_map cfg_;
  presence_settings settings_;
  std::function<branch_info()> describe_;
  std::function<void(const std::vector<std::string>&)> members_;
  std::string self_id_;
  mutable std::mutex mtx_;
  presence_view view_;
  /// Bad announcements, logged at most 3 of a reason a minute.
  log::limiter dropped_log_{3, std::chrono::seconds{60}};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace cyme
