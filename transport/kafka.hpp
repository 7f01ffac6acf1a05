#pragma once

/// Thin RAII wrappers over librdkafka's C API: a producer, a reader that
/// follows a topic without joining a consumer group, a group consumer for
/// task queues, topic creation, and the embedded (mock) cluster. Nothing
/// here knows about supervision.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_topic_s;
struct rd_kafka_mock_cluster_s;

namespace cyme::kafka {

using config_map = std::map<std::string, std::string>;

/// Raised when a client cannot be created or configured.
struct kafka_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One consumed message.
struct message {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  /// When its producer made it (ms since the epoch), -1 when not known.
  int64_t timestamp_ms = -1;
};

/// Owns an rd_kafka_t.
class client {
public:
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  virtual ~client();

  rd_kafka_s* handle() const {
    return rk_;
  }

  /// Creates missing topics with `partitions` partitions (replication 1);
  /// topics that exist are left as they are. Empty string on success.
  std::string ensure_topics(const std::vector<std::string>& topics,
                            int partitions, int timeout_ms);

  /// Whether a broker answered a metadata request within `timeout_ms`.
  bool reachable(int timeout_ms);

  /// The last error librdkafka reported for this client (a broker it
  /// cannot reach, a failed SASL authentication), empty when none yet.
  std::string last_error() const;

  /// Records an error (librdkafka's error callback).
  void note_error(std::string text);

protected:
  /// Takes ownership of a created handle.
  explicit client(rd_kafka_s* rk) : rk_(rk) {
  }
  rd_kafka_s* rk_ = nullptr;

private:
  mutable std::mutex error_mtx_;
  std::string last_error_;
};

/// Produces messages; deliveries are reported by `poll`.
class producer : public client {
public:
  /// Told, from `poll`, whether the message with `key` reached the broker:
  /// `error` is empty when it did, else librdkafka's reason.
  using delivery_fn
    = std::function<void(const std::string& key, const std::string& error)>;

  explicit producer(const config_map& cfg, delivery_fn on_delivery = {});
  ~producer() override;

  /// Queues a message for `topic` (partitioned by key). Empty string on
  /// success, else why it could not be queued.
  std::string produce(const std::string& topic, const std::string& key,
                      const std::string& value);

  /// Serves delivery reports for up to `timeout_ms`.
  void poll(int timeout_ms);

  /// Waits up to `timeout_ms` for queued messages to be delivered; returns
  /// whether all were.
  bool flush(int timeout_ms);

  /// Has librdkafka look `topic` up now and keep it current, so that a
  /// first message to it later does not wait for that (a producer idle
  /// for a while took about 1 s to deliver its first message to a topic
  /// it did not know, 4-6 ms when it knew it). Kept until the producer
  /// goes.
  void know_topic(const std::string& topic);

  /// How many topics know_topic was told of.
  size_t known_topics() const {
    return known_.size();
  }

private:
  delivery_fn on_delivery_;
  std::map<std::string, rd_kafka_topic_s*> known_;

  friend struct delivery_hook;
};

/// Reads every partition of one topic from its current end, with no
/// consumer group (no join, no rebalance, no commits): a restarted reader
/// hears new messages at once.
class topic_reader : public client {
public:
  /// Positions at the topic's high watermark as of construction, so every
  /// message produced after the constructor returns is read; or, with
  /// `from_beginning`, at its low watermark (everything still retained);
  /// or, with `since_ms` (ms since the epoch), at the first message made at
  /// or after then, so messages made between that time and the
  /// constructor's return are read too (a broker that cannot look up
  /// offsets by time, like the embedded cluster, positions at the high
  /// watermark instead). A broker that is not a partition's leader yet (a
  /// topic just made) is asked again within `timeout_ms`; after that the
  /// constructor throws `kafka_error`.
  topic_reader(const config_map& cfg, const std::string& topic,
               int timeout_ms = 10000, bool from_beginning = false,
               int64_t since_ms = -1);
  ~topic_reader() override;

  /// The next message, or nothing after `timeout_ms`.
  std::optional<message> poll(int timeout_ms);

  /// From now on, writes a byte to `fd` (non-blocking) whenever something
  /// comes for `poll` while nothing waited, so a caller can wait on the
  /// reader beside other descriptors; -1 stops it. What waited before this
  /// call writes nothing: poll until empty first.
  void notify(int fd);
};

/// Consumes task queues as a member of a consumer group, storing an offset
/// only when the caller says its message is done.
class group_consumer : public client {
public:
  /// Called in `poll` when partitions are revoked, before they go, so the
  /// caller can finish and store what it holds.
  using revoke_fn = std::function<void()>;

  group_consumer(const config_map& cfg, const std::vector<std::string>& topics,
                 revoke_fn on_revoke);
  ~group_consumer() override;

  std::optional<message> poll(int timeout_ms);

  /// Marks everything before `next_offset` of the partition as done; it is
  /// committed with the next commit.
  void store_offset(const std::string& topic, int32_t partition,
                    int64_t next_offset);

  /// Commits stored offsets now.
  void commit();

  /// Leaves the group (committing stored offsets); idempotent.
  void close();

  /// Partitions assigned to this member now.
  uint32_t assigned() const {
    return assigned_;
  }

private:
  revoke_fn on_revoke_;
  bool closed_ = false;
  std::atomic<uint32_t> assigned_{0};

  friend struct rebalance_hook;
};

/// librdkafka's mock cluster: a real Kafka protocol endpoint on loopback,
/// in memory, alive as long as this object.
class embedded_cluster {
public:
  explicit embedded_cluster(int brokers = 1);
  ~embedded_cluster();
  embedded_cluster(const embedded_cluster&) = delete;
  embedded_cluster& operator=(const embedded_cluster&) = delete;

  /// Bootstrap servers, e.g. "127.0.0.1:40123".
  const std::string& bootstrap() const {
    return bootstrap_;
  }

  int brokers() const {
    return brokers_;
  }

  /// Takes broker `id` (1-based) down: connections are closed and refused.
  void set_broker_down(int id);
  void set_broker_up(int id);

  /// Delays every response of broker `id` (1-based) by `rtt` (0: none
  /// again): a lagging broker, which still takes every request.
  void set_broker_rtt(int id, std::chrono::milliseconds rtt);

  /// Answers the next `count` offset lookups (ListOffsets) with "not
  /// leader for partition", as a broker does while a new topic's leader is
  /// being elected.
  void refuse_offset_lookups(size_t count);

  /// Creates a topic directly in the cluster.
  void create_topic(const std::string& topic, int partitions);

private:
  rd_kafka_s* host_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
  int brokers_ = 0;
};

/// The sum over the topic's partitions of the offsets `group` committed
/// (partitions with no commit count 0), or nothing when it cannot be read.
std::optional<int64_t> committed_total(const config_map& cfg,
                                       const std::string& group,
                                       const std::string& topic,
                                       int timeout_ms);

/// Client settings shared by all cyme clients of one broker: the operator's
/// `properties` (security.protocol, sasl.*, ssl.*, ...), then bootstrap
/// servers and cyme's own.
config_map base_config(const std::string& bootstrap,
                       const config_map& properties = {});

/// Whether a librdkafka property holds a secret: its value never goes on a
/// command line or into a log.
bool is_secret_property(const std::string& key);

/// Empty when librdkafka accepts every property (tried on a scratch
/// configuration), else which one and why; a secret's value is never
/// quoted. bootstrap.servers and client.id are cyme's to set.
std::string properties_problem(const config_map& properties);

/// A properties file: one `key=value` line each.
std::string format_properties(const config_map& properties);

/// Parses a properties file (`key=value` lines; blank lines and lines
/// starting with '#' skipped) and checks it as `properties_problem` does.
/// Empty on success, with `out` set; else why not.
std::string parse_properties(std::string_view text, config_map& out);

} // namespace cyme::kafka
