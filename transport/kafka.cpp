#include "transport/kafka.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "transport/logging.hpp"

namespace cyme::kafka {

namespace {

constexpr log::logger librdkafka_log{"kafka"};

/// librdkafka's own log lines go through our log, rate-limited: a broker
/// that is gone makes every client say so every second. Per kind of line
/// (librdkafka's facility: FAIL, CLUSTERID, ...), at most 3 lines in 30 s.
void on_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  static log::limiter limiter{3, std::chrono::seconds{30}};
  auto line = limiter.admit(fac, std::string{"["} + rd_kafka_name(rk) + "] "
                                   + fac + ": " + buf);
  if (!line)
    return;
  // syslog levels: 0-3 errors, 4 warnings, 5-6 notices and information.
  auto lv = level <= 3   ? log::level::error
            : level == 4 ? log::level::warn
            : level <= 6 ? log::level::info
                         : log::level::debug;
  librdkafka_log.write(lv, *line);
}

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  static_cast<client*>(opaque)->note_error(
    std::string{rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err))}
    + ": " + reason);
}

/// Creates a client with `cfg`; `owner`, when given, is the opaque of every
/// callback and hears librdkafka's errors.
rd_kafka_t* create(rd_kafka_type_t type, const config_map& cfg,
                   client* owner = nullptr,
                   const std::function<void(rd_kafka_conf_t*)>& extra = {}) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, &on_log);
  if (owner != nullptr) {
    rd_kafka_conf_set_opaque(conf, owner);
    rd_kafka_conf_set_error_cb(conf, &on_error);
  }
  for (auto& [key, value] : cfg) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err))
        != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw kafka_error("kafka setting " + key + ": " + err);
    }
  }
  if (extra)
    extra(conf);
  auto* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw kafka_error(std::string{"kafka client: "} + err);
  }
  return rk;
}

struct partition_list {
  rd_kafka_topic_partition_list_t* ptr;
  explicit partition_list(int n) : ptr(rd_kafka_topic_partition_list_new(n)) {
  }
  ~partition_list() {
    rd_kafka_topic_partition_list_destroy(ptr);
  }
};

} // namespace

// -- client -------------------------------------------------------------------

client::~client() {
  if (rk_ != nullptr)
    rd_kafka_destroy(rk_);
}

namespace {

struct cluster_view {
  std::vector<std::string> topics;
  std::vector<int32_t> brokers;
};

/// Topics and brokers the cluster knows, from a metadata request for all
/// topics (which never creates one).
std::optional<cluster_view> view_cluster(rd_kafka_t* rk, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms)
      != RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  cluster_view out;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      out.topics.emplace_back(md->topics[i].topic);
  for (int i = 0; i < md->broker_cnt; ++i)
    out.brokers.push_back(md->brokers[i].id);
  rd_kafka_metadata_destroy(md);
  return out;
}

/// Creates topics with the admin API; empty string on success.
std::string create_topics(rd_kafka_t* rk, const std::vector<std::string>& topics,
                          int partitions, int timeout_ms) {
  char err[512];
  std::vector<rd_kafka_NewTopic_t*> specs;
  for (auto& t : topics) {
    auto* spec = rd_kafka_NewTopic_new(t.c_str(), partitions, 1, err,
                                       sizeof(err));
    if (spec == nullptr) {
      rd_kafka_NewTopic_destroy_array(specs.data(), specs.size());
      return "topic " + t + ": " + err;
    }
    specs.push_back(spec);
  }
  auto* queue = rd_kafka_queue_new(rk);
  auto* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, err,
                                            sizeof(err));
  rd_kafka_CreateTopics(rk, specs.data(), specs.size(), options, queue);
  std::string result;
  auto* ev = rd_kafka_queue_poll(queue, timeout_ms + 1000);
  if (ev == nullptr) {
    result = "creating topics timed out";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = std::string{"creating topics: "} + rd_kafka_event_error_string(ev);
  } else {
    size_t n = 0;
    auto* res = rd_kafka_event_CreateTopics_result(ev);
    auto** outcomes = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      auto code = rd_kafka_topic_result_error(outcomes[i]);
      if (code != RD_KAFKA_RESP_ERR_NO_ERROR
          && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        result = std::string{"topic "} + rd_kafka_topic_result_name(outcomes[i])
                 + ": " + rd_kafka_err2str(code);
        break;
      }
    }
  }
  if (ev != nullptr)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy_array(specs.data(), specs.size());
  return result;
}

/// Asks for each topic's metadata by name, which creates it on clusters
/// that create topics on demand; empty string when all exist afterwards.
std::string create_on_demand(rd_kafka_t* rk,
                             const std::vector<std::string>& topics,
                             int timeout_ms) {
  for (auto& t : topics) {
    auto* rkt = rd_kafka_topic_new(rk, t.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md != nullptr
              && md->topic_cnt == 1
              && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    std::string why = err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err)
                      : md != nullptr && md->topic_cnt == 1
                        ? rd_kafka_err2str(md->topics[0].err)
                        : "no metadata";
    if (md != nullptr)
      rd_kafka_metadata_destroy(md);
    if (!ok)
      return "topic " + t + " cannot be created: " + why;
  }
  return {};
}

} // namespace

std::string client::ensure_topics(const std::vector<std::string>& topics,
                                  int partitions, int timeout_ms) {
  auto view = view_cluster(rk_, timeout_ms);
  if (!view)
    return "no metadata from the cluster";
  std::vector<std::string> missing;
  for (auto& t : topics)
    if (std::find(view->topics.begin(), view->topics.end(), t)
        == view->topics.end())
      missing.push_back(t);
  if (missing.empty())
    return {};
  // A cluster whose controller is none of its brokers (librdkafka's mock
  // cluster) takes no CreateTopics; it creates topics on demand, with its
  // own partition count.
  auto controller = rd_kafka_controllerid(rk_, timeout_ms);
  bool has_controller = std::find(view->brokers.begin(), view->brokers.end(),
                                  controller)
                        != view->brokers.end();
  if (has_controller
      && create_topics(rk_, missing, partitions, timeout_ms).empty())
    return {};
  return create_on_demand(rk_, missing, timeout_ms);
}

void client::note_error(std::string text) {
  std::lock_guard<std::mutex> guard{error_mtx_};
  last_error_ = std::move(text);
}

std::string client::last_error() const {
  std::lock_guard<std::mutex> guard{error_mtx_};
  return last_error_;
}

bool client::reachable(int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk_, 0, nullptr, &md, timeout_ms);
  if (md != nullptr)
    rd_kafka_metadata_destroy(md);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

// -- producer -----------------------------------------------------------------

struct delivery_hook {
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m,
                          void* opaque) {
    auto* self = static_cast<producer*>(static_cast<client*>(opaque));
    if (!self->on_delivery_)
      return;
    std::string key;
    if (m->key != nullptr)
      key.assign(static_cast<const char*>(m->key), m->key_len);
    self->on_delivery_(key, m->err == RD_KAFKA_RESP_ERR_NO_ERROR
                              ? std::string{}
                              : std::string{rd_kafka_err2str(m->err)});
  }
};

producer::producer(const config_map& cfg, delivery_fn on_delivery)
  : client(create(RD_KAFKA_PRODUCER, cfg, this,
                  [](rd_kafka_conf_t* conf) {
                    rd_kafka_conf_set_dr_msg_cb(conf,
                                                &delivery_hook::on_delivery);
                  })),
    on_delivery_(std::move(on_delivery)) {
}

producer::~producer() {
  flush(2000);
  for (auto& [name, topic] : known_)
    rd_kafka_topic_destroy(topic);
}

void producer::know_topic(const std::string& topic) {
  if (known_.count(topic) > 0)
    return;
  // A new topic object has the producer ask for its metadata at once;
  // held, it stays in the metadata cache.
  if (auto* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr))
    known_.emplace(topic, rkt);
}

std::string producer::produce(const std::string& topic, const std::string& key,
                              const std::string& value) {
  for (int attempt = 0;; ++attempt) {
    auto err = rd_kafka_producev(
      rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      return {};
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 50)
      return rd_kafka_err2str(err);
    // The local queue is full: serve deliveries, then try again.
    rd_kafka_poll(rk_, 100);
  }
}

void producer::poll(int timeout_ms) {
  rd_kafka_poll(rk_, timeout_ms);
}

bool producer::flush(int timeout_ms) {
  return rd_kafka_flush(rk_, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

// -- topic_reader -------------------------------------------------------------

namespace {

std::optional<message> take(rd_kafka_message_t* m) {
  if (m == nullptr)
    return std::nullopt;
  std::optional<message> result;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    message out;
    out.topic = rd_kafka_topic_name(m->rkt);
    out.partition = m->partition;
    out.offset = m->offset;
    if (m->key != nullptr)
      out.key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr)
      out.value.assign(static_cast<const char*>(m->payload), m->len);
    out.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
    result = std::move(out);
  }
  rd_kafka_message_destroy(m);
  return result;
}

} // namespace

namespace {

config_map reader_config(config_map cfg) {
  // librdkafka wants a group id even for manual assignment; the reader
  // never joins it and never commits.
  cfg["group.id"] = "cyme.reader";
  cfg["enable.auto.commit"] = "false";
  cfg["enable.auto.offset.store"] = "false";
  return cfg;
}

/// The watermarks of partition `p` of `topic`. A broker that is not its
/// leader yet (a topic just made, a leader being elected or moved) is
/// asked again, a moment later, until `deadline`.
rd_kafka_resp_err_t watermarks(rd_kafka_t* rk, const std::string& topic,
                               int p, int64_t& low, int64_t& high,
                               std::chrono::steady_clock::time_point deadline) {
  using namespace std::chrono;
  for (;;) {
    auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    auto err = rd_kafka_query_watermark_offsets(
      rk, topic.c_str(), p, &low, &high,
      static_cast<int>(std::max<int64_t>(1, left.count())));
    bool electing = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
                    || err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
    if (!electing || steady_clock::now() + 50ms >= deadline)
      return err;
    std::this_thread::sleep_for(50ms);
  }
}

} // namespace

topic_reader::topic_reader(const config_map& cfg, const std::string& topic,
                           int timeout_ms, bool from_beginning,
                           int64_t since_ms)
  : client(create(RD_KAFKA_CONSUMER, reader_config(cfg), this)) {
  rd_kafka_poll_set_consumer(rk_);
  auto* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk_, 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md == nullptr || md->topic_cnt != 1
      || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string why = err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err)
                      : md != nullptr && md->topic_cnt == 1
                        ? rd_kafka_err2str(md->topics[0].err)
                        : "no metadata";
    if (md != nullptr)
      rd_kafka_metadata_destroy(md);
    throw kafka_error("reading " + topic + ": " + why);
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  partition_list list{partitions};
  if (!from_beginning && since_ms >= 0) {
    // One request for every partition: the first offset at or after the
    // time. Where nothing is that new yet (-1), or the broker cannot say,
    // the watermarks below position at the end as of now.
    partition_list by_time{partitions};
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(by_time.ptr, topic.c_str(), p)->offset
        = since_ms;
    if (rd_kafka_offsets_for_times(rk_, by_time.ptr, timeout_ms)
        == RD_KAFKA_RESP_ERR_NO_ERROR) {
      bool all = true;
      for (int p = 0; p < partitions && all; ++p) {
        auto& tp = by_time.ptr->elems[p];
        all = tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0;
        rd_kafka_topic_partition_list_add(list.ptr, topic.c_str(), p)->offset
          = tp.offset;
      }
      if (all) {
        if (auto aerr = rd_kafka_assign(rk_, list.ptr);
            aerr != RD_KAFKA_RESP_ERR_NO_ERROR)
          throw kafka_error("reading " + topic + ": assign: "
                            + rd_kafka_err2str(aerr));
        return;
      }
      rd_kafka_topic_partition_list_destroy(list.ptr);
      list.ptr = rd_kafka_topic_partition_list_new(partitions);
    }
  }
  auto deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds{timeout_ms};
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    auto werr = watermarks(rk_, topic, p, low, high, deadline);
    if (werr != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw kafka_error("reading " + topic + ": watermarks: "
                        + rd_kafka_err2str(werr));
    rd_kafka_topic_partition_list_add(list.ptr, topic.c_str(), p)->offset
      = from_beginning ? low : high;
  }
  auto aerr = rd_kafka_assign(rk_, list.ptr);
  if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw kafka_error("reading " + topic + ": assign: " + rd_kafka_err2str(aerr));
}

topic_reader::~topic_reader() {
  rd_kafka_assign(rk_, nullptr);
  rd_kafka_consumer_close(rk_);
}

std::optional<message> topic_reader::poll(int timeout_ms) {
  return take(rd_kafka_consumer_poll(rk_, timeout_ms));
}

void topic_reader::notify(int fd) {
  // The consumer's queue is the one everything is forwarded to.
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk_);
  if (queue == nullptr)
    return;
  static constexpr char wake = 1;
  rd_kafka_queue_io_event_enable(queue, fd, &wake, 1);
  rd_kafka_queue_destroy(queue);
}

// -- group_consumer -----------------------------------------------------------

struct rebalance_hook {
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) {
    auto* self = static_cast<group_consumer*>(static_cast<client*>(opaque));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      rd_kafka_assign(rk, partitions);
      self->assigned_ = static_cast<uint32_t>(partitions->cnt);
      return;
    }
    // Revoked: let the owner finish and store what it holds, commit it, and
    // only then give the partitions up, so nothing done is redelivered.
    if (self->on_revoke_)
      self->on_revoke_();
    rd_kafka_commit(rk, nullptr, 0);
    rd_kafka_assign(rk, nullptr);
    self->assigned_ = 0;
  }
};

namespace {

config_map group_config(config_map cfg) {
  // Offsets are stored by the owner when a task is done, never on receipt.
  // These are the protocol's (docs/PROTOCOL.md), not the operator's: every
  // member of a queue's group must agree on them.
  cfg["enable.auto.offset.store"] = "false";
  cfg["enable.auto.commit"] = "true";
  cfg["auto.offset.reset"] = "earliest";
  cfg["partition.assignment.strategy"] = "roundrobin";
  return cfg;
}

} // namespace

group_consumer::group_consumer(const config_map& cfg,
                               const std::vector<std::string>& topics,
                               revoke_fn on_revoke)
  : client(create(RD_KAFKA_CONSUMER, group_config(cfg), this,
                  [](rd_kafka_conf_t* conf) {
                    rd_kafka_conf_set_rebalance_cb(
                      conf, &rebalance_hook::on_rebalance);
                  })),
    on_revoke_(std::move(on_revoke)) {
  rd_kafka_poll_set_consumer(rk_);
  partition_list list{static_cast<int>(topics.size())};
  for (auto& t : topics)
    rd_kafka_topic_partition_list_add(list.ptr, t.c_str(),
                                      RD_KAFKA_PARTITION_UA);
  auto err = rd_kafka_subscribe(rk_, list.ptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw kafka_error(std::string{"subscribe: "} + rd_kafka_err2str(err));
}

group_consumer::~group_consumer() {
  close();
}

std::optional<message> group_consumer::poll(int timeout_ms) {
  return take(rd_kafka_consumer_poll(rk_, timeout_ms));
}

void group_consumer::store_offset(const std::string& topic, int32_t partition,
                                  int64_t next_offset) {
  partition_list list{1};
  rd_kafka_topic_partition_list_add(list.ptr, topic.c_str(), partition)->offset
    = next_offset;
  rd_kafka_offsets_store(rk_, list.ptr);
}

void group_consumer::commit() {
  rd_kafka_commit(rk_, nullptr, 0);
}

void group_consumer::close() {
  if (closed_)
    return;
  closed_ = true;
  rd_kafka_consumer_close(rk_);
}

// -- embedded_cluster ---------------------------------------------------------

embedded_cluster::embedded_cluster(int brokers) : brokers_(brokers) {
  host_ = create(RD_KAFKA_PRODUCER, {{"log_level", "3"}});
  cluster_ = rd_kafka_mock_cluster_new(host_, brokers);
  if (cluster_ == nullptr) {
    rd_kafka_destroy(host_);
    throw kafka_error("could not start the embedded Kafka cluster");
  }
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

embedded_cluster::~embedded_cluster() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(host_);
}

void embedded_cluster::set_broker_down(int id) {
  rd_kafka_mock_broker_set_down(cluster_, id);
}

void embedded_cluster::set_broker_up(int id) {
  rd_kafka_mock_broker_set_up(cluster_, id);
}

void embedded_cluster::set_broker_rtt(int id, std::chrono::milliseconds rtt) {
  rd_kafka_mock_broker_set_rtt(cluster_, id, static_cast<int>(rtt.count()));
}

void embedded_cluster::refuse_offset_lookups(size_t count) {
  // ListOffsets is API key 2 of the Kafka protocol.
  constexpr int16_t list_offsets = 2;
  std::vector<rd_kafka_resp_err_t> errors(
    count, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  rd_kafka_mock_push_request_errors_array(cluster_, list_offsets, count,
                                          errors.data());
}

void embedded_cluster::create_topic(const std::string& topic, int partitions) {
  auto err = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw kafka_error("create topic " + topic + ": " + rd_kafka_err2str(err));
}

std::optional<int64_t> committed_total(const config_map& cfg,
                                       const std::string& group,
                                       const std::string& topic,
                                       int timeout_ms) {
  auto full = cfg;
  full["group.id"] = group;
  full["enable.auto.commit"] = "false";
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> rk{
    create(RD_KAFKA_CONSUMER, full), rd_kafka_destroy};
  auto* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk.get(), 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    if (md != nullptr)
      rd_kafka_metadata_destroy(md);
    return std::nullopt;
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  partition_list list{partitions};
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.ptr, topic.c_str(), p);
  if (rd_kafka_committed(rk.get(), list.ptr, timeout_ms)
      != RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  int64_t total = 0;
  for (int i = 0; i < list.ptr->cnt; ++i)
    if (list.ptr->elems[i].offset >= 0)
      total += list.ptr->elems[i].offset;
  return total;
}

config_map base_config(const std::string& bootstrap,
                       const config_map& properties) {
  config_map out = properties;
  // Ours, whatever the properties say.
  out["bootstrap.servers"] = bootstrap;
  out["client.id"] = "cyme";
  out.emplace("socket.nagle.disable", "true");
  out.emplace("log.connection.close", "false");
  return out;
}

bool is_secret_property(const std::string& key) {
  for (auto* part : {"password", "secret", "jaas", "key.pem", "oauthbearer.config"})
    if (key.find(part) != std::string::npos)
      return true;
  return false;
}

std::string properties_problem(const config_map& properties) {
  std::unique_ptr<rd_kafka_conf_t, void (*)(rd_kafka_conf_t*)> conf{
    rd_kafka_conf_new(), rd_kafka_conf_destroy};
  for (auto& [key, value] : properties) {
    if (key == "bootstrap.servers" || key == "client.id")
      return "Kafka property '" + key + "' is set by cyme";
    if (key.empty() || value.find_first_of("\n\r") != std::string::npos
        || value.find('\0') != std::string::npos
        || key.find_first_of("=\n\r \t") != std::string::npos)
      return "Kafka property '" + key + "' is not one key=value line";
    char err[512];
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), err,
                          sizeof(err))
        != RD_KAFKA_CONF_OK)
      return is_secret_property(key)
               ? "Kafka property '" + key + "' is not accepted by librdkafka"
               : "Kafka property '" + key + "': " + err;
  }
  return {};
}

std::string format_properties(const config_map& properties) {
  std::string out;
  for (auto& [key, value] : properties)
    out += key + "=" + value + "\n";
  return out;
}

std::string parse_properties(std::string_view text, config_map& out) {
  config_map parsed;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto end = text.find('\n');
    auto line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{}
                                         : text.substr(end + 1);
    auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#')
      continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return "line " + std::to_string(line_no) + " is not key=value";
    auto key = line.substr(first, eq - first);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t'))
      key.remove_suffix(1);
    if (key.empty())
      return "line " + std::to_string(line_no) + " has no key";
    parsed[std::string{key}] = std::string{line.substr(eq + 1)};
  }
  if (auto p = properties_problem(parsed); !p.empty())
    return p;
  out = std::move(parsed);
  return {};
}

} // namespace cyme::kafka
