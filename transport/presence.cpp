#include "transport/presence.hpp"

#include <algorithm>
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

} // namespace

using json = nlohmann::json;

std::string encode_presence(const branch_info& info) {
  return json{{"v", wire_version},           {"id", info.id},
              {"http", info.http},           {"node", info.node},
              {"instances", info.instances}, {"load", info.load}}
    .dump();
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

presence::presence(kafka::config_map cfg, presence_settings settings,
                   std::function<branch_info()> describe,
                   std::function<void(const std::vector<std::string>&)> members)
  : cfg_(std::move(cfg)),
    settings_(std::move(settings)),
    describe_(std::move(describe)),
    members_(std::move(members)) {
  self_id_ = describe_().id;
  thread_ = std::thread{[this] { run(); }};
  name_thread(thread_, "cyme-presence");
}

presence::~presence() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void presence::run() {
  std::unique_ptr<kafka::producer> producer;
  std::unique_ptr<kafka::topic_reader> reader;
  auto next = std::chrono::steady_clock::now();
  std::vector<std::string> told;
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
      if (!reader)
        reader = std::make_unique<kafka::topic_reader>(cfg_, settings_.topic);
    } catch (const std::exception& e) {
      presence_log.warn(e.what());
      producer.reset();
      reader.reset();
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(settings_.interval / 10);
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next) {
      next = now + settings_.interval;
      auto me = describe_();
      producer->produce(settings_.topic, me.id, encode_presence(me));
      producer->poll(0);
      // This branch is live as long as it announces.
      {
        std::lock_guard<std::mutex> guard{mtx_};
        seen_[me.id] = {me, now};
      }
      // Checked once per announcement: a branch falls silent by time alone.
      if (members_) {
        std::vector<std::string> ids;
        for (auto& b : live())
          ids.push_back(b.id);
        if (ids != told) {
          told = ids;
          members_(ids);
        }
      }
    }
    if (auto m = reader->poll(50)) {
      std::string why;
      if (auto info = decode_presence(m->value, &why)) {
        std::lock_guard<std::mutex> guard{mtx_};
        if (info->id != self_id_)
          seen_[info->id] = {*info, std::chrono::steady_clock::now()};
      } else if (auto line = dropped_log_.admit(why, "dropped announcement: " + why)) {
        // A peer of another version, say, announces every second.
        presence_log.warn(*line);
      }
    }
  }
}

std::vector<branch_info> presence::live() const {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<branch_info> out;
  for (auto& [id, entry] : seen_)
    if (now - entry.second <= settings_.silence)
      out.push_back(entry.first);
  return out;
}

void presence::placed_on(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = seen_.find(id); i != seen_.end())
    i->second.first.instances += 1;
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
