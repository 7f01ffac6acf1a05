#include "transport/presence.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <memory>

#include <nlohmann/json.hpp>

#include "messages/names.hpp"
#include "messages/topics.hpp"
#include "messages/wire.hpp"
#include "transport/logging.hpp"
#include "transport/thread_name.hpp"

namespace cyme {

namespace {

constexpr log::logger presence_log{"presence"};

/// A day: no branch says it will be silent for longer.
constexpr uint64_t max_announce_every_ms = 86'400'000;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace

using json = nlohmann::json;

std::string encode_presence(const branch_info& info) {
  json doc{{"v", wire_version},           {"id", info.id},
           {"http", info.http},           {"node", info.node},
           {"instances", info.instances}, {"load", info.load}};
  if (info.every.count() > 0)
    doc["every"] = info.every.count();
  if (info.leaving)
    doc["leaving"] = true;
  return doc.dump();
}

std::optional<branch_info> decode_presence(const std::string& bytes,
                                           std::string* error) {
  auto bad = [&](const char* why) -> std::optional<branch_info> {
    if (error != nullptr)
      *error = why;
    return std::nullopt;
  };
  if (bytes.size() > max_wire_message)
    return bad("announcement too large");
  auto doc = json::parse(bytes, nullptr, false);
  if (!doc.is_object())
    return bad("announcement is not a JSON object");
  auto v = doc.find("v");
  if (v == doc.end() || !v->is_number_integer() || v->get<int>() != wire_version)
    return bad("announcement has no \"v\": 1");
  branch_info info;
  for (auto [key, dst] : {std::pair{"id", &info.id}, std::pair{"http", &info.http},
                          std::pair{"node", &info.node}}) {
    auto i = doc.find(key);
    if (i == doc.end() || !i->is_string())
      return bad("announcement lacks a string field");
    *dst = i->get<std::string>();
  }
  if (!name_problem("branch id", info.id).empty())
    return bad("announcement has an invalid branch id");
  if ((info.http.rfind("http://", 0) != 0 && info.http.rfind("https://", 0) != 0)
      || info.http.size() > 256)
    return bad("announcement has an invalid HTTP URL");
  auto n = doc.find("instances");
  auto l = doc.find("load");
  if (n == doc.end() || !n->is_number_unsigned() || l == doc.end()
      || !l->is_number())
    return bad("announcement lacks instances or load");
  info.instances = n->get<uint32_t>();
  info.load = l->get<double>();
  // Both are later additions: a branch that does not say announces every
  // default interval, and never leaves but by falling silent.
  if (auto e = doc.find("every"); e != doc.end()) {
    if (!e->is_number_unsigned() || e->get<uint64_t>() < 1
        || e->get<uint64_t>() > max_announce_every_ms)
      return bad("announcement has an \"every\" that is not 1 to 86400000 ms");
    info.every = std::chrono::milliseconds{e->get<int64_t>()};
  }
  if (auto g = doc.find("leaving"); g != doc.end()) {
    if (!g->is_boolean())
      return bad("announcement has a \"leaving\" that is not true or false");
    info.leaving = g->get<bool>();
  }
  return info;
}

std::chrono::nanoseconds round_slot(const std::vector<std::string>& ids,
                                    const std::string& self,
                                    std::chrono::nanoseconds interval) {
  std::vector<std::string> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  auto i = std::find(sorted.begin(), sorted.end(), self);
  if (i == sorted.end())
    return std::chrono::nanoseconds{0};
  auto k = static_cast<int64_t>(i - sorted.begin());
  auto n = static_cast<int64_t>(sorted.size());
  // k/n of the interval without overflow: intervals are at most hours.
  return std::chrono::nanoseconds{interval.count() / n * k
                                  + interval.count() % n * k / n};
}

std::chrono::nanoseconds offset_on_clock(std::chrono::nanoseconds wall_offset,
                                         std::chrono::nanoseconds behind,
                                         std::chrono::nanoseconds interval) {
  // A wall time w = s + behind is on the slot when w % interval equals the
  // wall offset, so s % interval equals wall_offset - behind.
  auto r = (wall_offset - behind % interval) % interval;
  return r.count() < 0 ? r + interval : r;
}

presence_view::presence_view(presence_settings settings, std::string self_id)
  : settings_(std::move(settings)), self_id_(std::move(self_id)) {}

std::chrono::milliseconds presence_view::every_of(const entry& e) const {
  return e.info.every.count() > 0 ? e.info.every : settings_.interval;
}

bool presence_view::within_silence(const entry& e, time_point now) const {
  return now - e.at <= every_of(e) * settings_.silence_intervals;
}

void presence_view::heard(const branch_info& info, time_point at) {
  // Whoever fell silent before this announcement was made is gone: a
  // later announcement brings it back.
  for (auto i = seen_.begin(); i != seen_.end();)
    i = within_silence(i->second, at) ? std::next(i) : seen_.erase(i);
  if (info.leaving)
    seen_.erase(info.id);
  else
    seen_[info.id] = entry{info, at};
}

std::vector<branch_info> presence_view::live(time_point now) const {
  std::vector<branch_info> out;
  for (auto& [id, e] : seen_)
    if (!e.unreachable && within_silence(e, now)) {
      out.push_back(e.info);
      out.back().every = every_of(e);
    }
  return out;
}

bool presence_view::unreachable(const std::string& id, time_point now) {
  if (id == self_id_)
    return false;
  auto i = seen_.find(id);
  if (i == seen_.end() || i->second.unreachable)
    return false;
  i->second.unreachable = true;
  return within_silence(i->second, now);
}

std::chrono::milliseconds presence_view::announce_every(std::size_t n) const {
  if (settings_.cluster_rate <= 0)
    return settings_.interval;
  auto spread = std::chrono::milliseconds{static_cast<int64_t>(
    std::ceil(static_cast<double>(n) * 1000.0 / settings_.cluster_rate))};
  return std::min(std::max(settings_.interval, spread),
                  std::chrono::milliseconds{max_announce_every_ms});
}

void presence_view::placed_on(const std::string& id) {
  if (auto i = seen_.find(id); i != seen_.end())
    i->second.info.instances += 1;
}

presence::presence(kafka::config_map cfg, presence_settings settings,
                   std::function<branch_info()> describe,
                   std::function<void(const std::vector<std::string>&)> members)
  : cfg_(std::move(cfg)),
    settings_(std::move(settings)),
    describe_(std::move(describe)),
    members_(std::move(members)),
    self_id_(describe_().id),
    view_(settings_, self_id_) {
  thread_ = std::thread{[this] { run(); }};
  name_thread(thread_, "cyme-presence");
}

presence::~presence() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void presence::tell_members(std::vector<std::string>& told) {
  if (!members_)
    return;
  std::vector<std::string> ids;
  for (auto& b : live())
    ids.push_back(b.id);
  if (ids != told) {
    told = ids;
    members_(ids);
  }
}

void presence::run() {
  using clock = std::chrono::steady_clock;
  std::unique_ptr<kafka::producer> producer;
  std::unique_ptr<kafka::topic_reader> reader;
  // Announcements made before the reader started are the history it
  // caught up on, dated by their own time; later ones by their arrival,
  // so a host whose clock is behind does not look silent.
  int64_t reader_start_ms = 0;
  auto next = clock::now();
  auto next_check = next;
  std::vector<std::string> told;
  std::optional<branch_info> last;
  while (!stop_) {
    try {
      if (!producer) {
        auto pcfg = cfg_;
        pcfg["linger.ms"] = "0";
        pcfg["message.timeout.ms"] = std::to_string(settings_.interval.count());
        producer = std::make_unique<kafka::producer>(pcfg);
        if (auto err = producer->ensure_topics({settings_.topic}, topics::presence_partitions, 5000);
            !err.empty())
          throw kafka::kafka_error(err);
      }
      if (!reader) {
        reader_start_ms = wall_ms();
        reader = std::make_unique<kafka::topic_reader>(
          cfg_, settings_.topic, 10000, false,
          reader_start_ms - settings_.history.count());
      }
    } catch (const std::exception& e) {
      presence_log.warn(e.what());
      producer.reset();
      reader.reset();
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(settings_.interval / 10);
      continue;
    }
    auto now = clock::now();
    if (now >= next) {
      auto me = describe_();
      {
        // This branch is live as long as it announces, and says how long
        // until it announces again: longer the more branches there are.
        std::lock_guard<std::mutex> guard{mtx_};
        auto all = view_.live(now);
        bool counted = std::any_of(all.begin(), all.end(),
                                   [&](auto& b) { return b.id == me.id; });
        me.every = view_.announce_every(all.size() + (counted ? 0 : 1));
        view_.heard(me, now);
      }
      next = now + me.every;
      producer->produce(settings_.topic, me.id, encode_presence(me));
      producer->poll(0);
      last = me;
    }
    // A branch falls silent by time alone: checked every shortest
    // interval, however long this branch's own is.
    if (now >= next_check) {
      next_check = now + settings_.interval;
      tell_members(told);
    }
    if (auto m = reader->poll(50)) {
      std::string why;
      if (auto info = decode_presence(m->value, &why)) {
        if (info->id != self_id_) {
          auto at = clock::now();
          if (m->timestamp_ms > 0 && m->timestamp_ms < reader_start_ms)
            at -= std::chrono::milliseconds{wall_ms() - m->timestamp_ms};
          std::lock_guard<std::mutex> guard{mtx_};
          view_.heard(*info, at);
        }
      } else if (auto line = dropped_log_.admit(why, "dropped announcement: " + why)) {
        // A peer of another version, say, announces every second.
        presence_log.warn(*line);
      }
    }
  }
  // Stopping in order: the others drop this branch now, not after its
  // silence.
  if (producer && last) {
    last->leaving = true;
    last->every = std::chrono::milliseconds{0};
    producer->produce(settings_.topic, last->id, encode_presence(*last));
    producer->flush(1000);
  }
}

std::vector<branch_info> presence::live() const {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{mtx_};
  return view_.live(now);
}

void presence::placed_on(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  view_.placed_on(id);
}

void presence::unreachable(const std::string& id) {
  bool was_live = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    was_live = view_.unreachable(id, std::chrono::steady_clock::now());
  }
  if (was_live)
    presence_log.info("branch '" + id
                      + "' refused a connection or did not take it: out of "
                        "the view until it announces again");
}

std::optional<branch_info> presence::least_loaded() const {
  auto all = live();
  if (all.empty())
    return std::nullopt;
  return *std::min_element(all.begin(), all.end(), [](auto& a, auto& b) {
    return std::tie(a.instances, a.load, a.id) < std::tie(b.instances, b.load, b.id);
  });
}

} // namespace cyme
