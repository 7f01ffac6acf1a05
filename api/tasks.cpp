#include "api/tasks.hpp"

#include "messages/names.hpp"
#include "messages/topics.hpp"
#include "messages/wire.hpp"

namespace cyme::api {

/// A producer is made again when its broker's client properties changed;
/// the old one finishes its batches and goes with the last of them.
std::shared_ptr<task_producer> task_room::producer_for(const std::string& broker,
                                                       const std::string& queue,
                                                       bool& topic_known) {
  auto version = ctx_.parts.kafka_properties->version(broker);
  std::lock_guard<std::mutex> guard{producers_mtx_};
  auto& p = producers_[broker];
  if (!p.client || p.version != version) {
    p.client = std::make_shared<task_producer>(task_producer::settings(
      kafka::base_config(broker, ctx_.parts.kafka_properties->for_broker(broker))));
    p.version = version;
    // Checked again on the new connection.
    for (auto i = known_topics_.begin(); i != known_topics_.end();)
      i = i->first == broker ? known_topics_.erase(i) : std::next(i);
  }
  topic_known = known_topics_.count({broker, queue}) > 0;
  return p.client;
}

bool task_room::sends_at_once(const http::request& req,
                              const std::vector<std::string>& seg) {
  if (seg.size() != 3 || seg[1] != "queue" || req.method != "POST"
      || req.body.size() > at_once_body || !name_problem("app", seg[0]).empty()
      || !name_problem("queue", seg[2]).empty())
    return false;
  auto broker = ctx_.parts.apps->broker_of(seg[0]);
  if (!broker)
    return false;
  if (broker->empty())
    *broker = ctx_.parts.default_broker;
  auto version = ctx_.parts.kafka_properties->version(*broker);
  std::lock_guard<std::mutex> guard{producers_mtx_};
  auto p = producers_.find(*broker);
  return p != producers_.end() && p->second.client
         && p->second.version == version
         && known_topics_.count({*broker, seg[2]}) > 0;
}

namespace {

/// One task of a request, checked and encoded; `where` names it in errors
/// ("" for a single task, "task 3: " in a batch).
task_producer::item encode_one(const std::optional<std::string>& handler,
                               const std::optional<json>& args,
                               const std::string& where) {
  task_message task;
  task.id = new_uuid();
  task.handler = handler.value_or("echo");
  if (task.handler.empty() || task.handler.size() > 64)
    fail(400, where + "'handler' must hold 1 to 64 characters");
  task.args_json = args.value_or(json(nullptr)).dump();
  auto bytes = encode_task(task);
  if (bytes.size() > max_wire_message)
    fail(413, where + "the task is larger than "
                + std::to_string(max_wire_message) + " bytes");
  return {task.id, std::move(bytes)};
}

} // namespace

bool task_room::send(const http::exchange_ptr& ex, const std::string& method,
                     const std::string& app, const std::string& queue,
                     const params& p, bool may_wait) {
  if (method != "POST" && method != "PUT")
    fail(405, "method not allowed");
  check_name("queue", queue);
  auto broker = ctx_.app_broker(app);
  if (broker.empty())
    broker = ctx_.parts.default_broker;
  std::vector<task_producer::item> items;
  const auto* batch = p.array();
  if (batch != nullptr) {
    if (batch->empty() || batch->size() > max_batch)
      fail(400, "a batch holds 1 to " + std::to_string(max_batch) + " tasks");
    items.reserve(batch->size());
    for (size_t i = 0; i < batch->size(); ++i) {
      auto where = "task " + std::to_string(i) + ": ";
      const auto& t = (*batch)[i];
      if (!t.is_object())
        fail(400, where + "must be an object {\"handler\", \"args\"}");
      std::optional<std::string> handler;
      std::optional<json> args;
      for (auto& [k, v] : t.items()) {
        if (k == "handler") {
          if (!v.is_string())
            fail(400, where + "'handler' must be a string");
          handler = v.get<std::string>();
        } else if (k == "args") {
          args = v;
        } else {
          fail(400, where + "unknown field '" + k + "' (handler, args)");
        }
      }
      items.push_back(encode_one(handler, args, where));
    }
  } else {
    items.push_back(encode_one(p.text("handler"), p.value("args"), ""));
  }
  bool topic_known = false;
  auto producer = producer_for(broker, queue, topic_known);
  if (!topic_known) {
    if (!may_wait)
      throw would_wait{};
    // Broker I/O, once per topic, with no lock held.
    if (auto err = producer->ensure_topics({queue}, topics::queue_partitions, 5000); !err.empty())
      fail(503, err);
    std::lock_guard<std::mutex> guard{producers_mtx_};
    known_topics_.emplace(broker, queue);
  }
  std::vector<std::string> ids;
  ids.reserve(items.size());
  for (auto& item : items)
    ids.push_back(item.first);
  auto n = items.size();
  bool single = batch == nullptr;
  producer->send(queue, std::move(items),
                 // Not the producer: its own thread calls this.
                 [this, ex, ids = std::move(ids), n,
                  single](const std::string& error) {
                   http::response res;
                   if (!error.empty()) {
                     reply(res, 503, json{{"error", (single ? "task not stored: "
                                                            : "tasks not all stored: ")
                                                       + error}});
                   } else {
                     submitted_ += n;
                     if (single)
                       reply(res, 202, json{{"id", ids.front()}});
                     else
                       reply(res, 202, json{{"ids", ids}});
                   }
                   ex->reply(std::move(res));
                 });
  return true;
}

bool task_room::query(const http::exchange_ptr& ex, const std::string& method,
                      const std::string& app, const std::string& id,
                      const std::string& what, const params& p,
                      http::response& res) {
  if (method != "GET")
    fail(405, "method not allowed");
  if (id.empty() || id.size() > 128)
    fail(400, "task ids hold 1 to 128 characters");
  if (what != "state" && what != "result" && what != "wait")
    fail(404, "no such path");
  if (ctx_.parts.results == nullptr)
    fail(503, "task results are not available");
  auto timeout = p.count("timeout").value_or(10);
  if (timeout > 300)
    fail(400, "'timeout' is at most 300 seconds");
  // Results come on the broker the app's tasks went to; an app not in the
  // model (deleted since) is asked of the default broker.
  auto broker = ctx_.app_or_new(app).broker;
  auto results = ctx_.parts.results->of(
    broker.empty() ? ctx_.parts.default_broker : broker);
  if (what == "state") {
    auto r = results->find(id);
    reply(res, 200, json{{"id", id},
                         {"state", r ? to_string(r->state) : "PENDING"}});
    return false;
  }
  if (what == "result") {
    reply(res, 200, result_json(id, results->find(id)));
    return false;
  }
  // wait: whichever comes first, the result, the timeout or the client
  // going, settles it; nothing holds a thread meanwhile.
  auto settled = std::make_shared<std::atomic<bool>>(false);
  auto handle = std::make_shared<std::atomic<uint64_t>>(0);
  std::weak_ptr<task_results> reader = results;
  /// Settles the wait as over without a result; false when it was settled
  /// already.
  auto give_up = [settled, handle, reader] {
    if (settled->exchange(true))
      return false;
    if (auto r = reader.lock())
      r->unwatch(*handle);
    return true;
  };
  ex->on_close([give_up] { give_up(); });
  ex->after(std::chrono::seconds{timeout}, [ex, give_up, id] {
    if (!give_up())
      return;
    http::response late;
    reply(late, 504, result_json(id, std::nullopt));
    ex->reply(std::move(late));
  });
  *handle = results->watch(id, [ex, settled, id](const task_result& r) {
    if (settled->exchange(true))
      return;
    http::response found;
    reply(found, 200, result_json(id, r));
    ex->reply(std::move(found));
  });
  // Settled before the watch was made (a zero timeout, the client gone).
  if (settled->load() && *handle != 0)
    results->unwatch(*handle);
  return true;
}

} // namespace cyme::api
