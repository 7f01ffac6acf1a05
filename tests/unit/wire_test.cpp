// The JSON wire format of the control protocol and of tasks: round trips,
// and every malformed input rejected with a reason instead of a crash.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "messages/wire.hpp"

using namespace cyme;

BOOST_AUTO_TEST_SUITE(wire)

BOOST_AUTO_TEST_CASE(commands_round_trip) {
  // Every op with its arguments survives encode + decode.
  command_envelope env;
  env.id = "b1-7";
  env.reply_to = "cyme.reply.b1";
  env.command.op = control_op::autoscale;
  env.command.destinations = {"w1", "w2"};
  env.command.max_concurrency = 8;
  env.command.min_concurrency = 2;
  auto back = decode_command(encode_command(env));
  BOOST_REQUIRE_MESSAGE(back, back.error);
  BOOST_TEST(back.value->id == "b1-7");
  BOOST_TEST(back.value->reply_to == "cyme.reply.b1");
  BOOST_TEST(to_string(back.value->command.op) == "autoscale");
  BOOST_TEST(back.value->command.destinations.size() == 2u);
  BOOST_TEST(back.value->command.max_concurrency == 8u);
  BOOST_TEST(back.value->command.min_concurrency == 2u);
  env.command.op = control_op::add_consumer;
  env.command.queue = "q1";
  back = decode_command(encode_command(env));
  BOOST_REQUIRE(back);
  BOOST_TEST(back.value->command.queue == "q1");
}

BOOST_AUTO_TEST_CASE(commands_for_large_fleets_are_split_under_the_limit) {
  // A command that fits is one message, the same bytes encode_command makes.
  command_envelope env;
  env.id = "b1-9";
  env.reply_to = "cyme.reply.b1";
  env.command.op = control_op::ping;
  env.command.destinations = {"w1", "w2"};
  auto one = encode_command_messages(env);
  BOOST_TEST(one.size() == 1u);
  BOOST_TEST(one.front() == encode_command(env));
  // 10,000 names of 8 characters and 2,000 of 64 do not fit in one: each
  // share fits, carries the id and op, and together they name everyone
  // once, in order.
  for (auto [count, length] : {std::pair<int, size_t>{10000, 8}, {2000, 64}}) {
    env.command.destinations.clear();
    for (int i = 0; i < count; ++i) {
      auto n = std::to_string(i);
      env.command.destinations.push_back(std::string(length - n.size(), 'w') + n);
    }
    BOOST_TEST(encode_command(env).size() > max_wire_message);
    auto parts = encode_command_messages(env);
    BOOST_TEST(parts.size() > 1u);
    BOOST_TEST(parts.size() <= encode_command(env).size() / max_wire_message + 2);
    std::vector<std::string> seen;
    for (auto& bytes : parts) {
      BOOST_TEST(bytes.size() <= max_wire_message);
      auto back = decode_command(bytes);
      BOOST_REQUIRE_MESSAGE(back, back.error);
      BOOST_TEST(back.value->id == "b1-9");
      BOOST_TEST(to_string(back.value->command.op) == "ping");
      auto& to = back.value->command.destinations;
      seen.insert(seen.end(), to.begin(), to.end());
    }
    BOOST_TEST(seen == env.command.destinations);
  }
}

namespace {

/// A reply to `op` from "w1" with every field of stats set.
reply_envelope sample_reply(control_op op) {
  reply_envelope env;
  env.id = "b1-8";
  env.op = op;
  env.reply.instance = "w1";
  env.reply.stats.pid = 42;
  env.reply.stats.uptime_ms = 1234567;
  env.reply.stats.queues = {"dq.w1", "q1"};
  env.reply.stats.autoscale_max = 4;
  env.reply.stats.autoscale_min = 1;
  env.reply.stats.concurrency = 2;
  env.reply.stats.tasks_done = 10;
  env.reply.stats.tasks_failed = 1;
  env.reply.stats.partitions = {{"q1", 3}, {"q2", 0}};
  return env;
}

} // namespace

BOOST_AUTO_TEST_CASE(replies_round_trip) {
  // A stats reply keeps every field; an error reply keeps its message.
  auto env = sample_reply(control_op::stats);
  auto back = decode_reply(encode_reply(env));
  BOOST_REQUIRE_MESSAGE(back, back.error);
  BOOST_TEST(back.value->reply.instance == "w1");
  BOOST_TEST(back.value->reply.stats.pid == 42);
  BOOST_TEST(back.value->reply.stats.queues.size() == 2u);
  BOOST_TEST(back.value->reply.stats.autoscale_max == 4u);
  BOOST_TEST(back.value->reply.stats.concurrency == 2u);
  BOOST_TEST(back.value->reply.stats.tasks_done == 10u);
  env.reply.ok = false;
  env.reply.error = "nope";
  back = decode_reply(encode_reply(env));
  BOOST_REQUIRE(back);
  BOOST_TEST(!back.value->reply.ok);
  BOOST_TEST(back.value->reply.error == "nope");
}

namespace {

/// Calls `check` with every seed cut at every length, and with each byte
/// replaced by each of a set of troublesome characters.
template <class F>
void each_variant(const std::vector<std::string>& seeds, F&& check) {
  for (auto& seed : seeds) {
    for (size_t n = 0; n <= seed.size(); ++n)
      check(seed.substr(0, n));
    for (size_t i = 0; i < seed.size(); ++i)
      for (char c : std::string{" \"\\{}[],:0-.e1tnx\x01\x7f"} + "\xc3")
        if (seed[i] != c) {
          auto mutated = seed;
          mutated[i] = c;
          check(mutated);
        }
  }
}

/// Whether two decodings say the same: both the same error, or both a
/// reply with every field equal.
bool same(const decoded<reply_envelope>& a, const decoded<reply_envelope>& b) {
  if (a.value.has_value() != b.value.has_value())
    return false;
  if (!a.value)
    return a.error == b.error;
  const auto& x = *a.value;
  const auto& y = *b.value;
  const auto& s = x.reply.stats;
  const auto& t = y.reply.stats;
  return x.id == y.id && x.op == y.op && x.reply.instance == y.reply.instance
         && x.reply.ok == y.reply.ok && x.reply.error == y.reply.error
         && x.reply.queues == y.reply.queues && s.pid == t.pid
         && s.uptime_ms == t.uptime_ms && s.queues == t.queues
         && s.autoscale_max == t.autoscale_max
         && s.autoscale_min == t.autoscale_min
         && s.concurrency == t.concurrency && s.tasks_done == t.tasks_done
         && s.tasks_failed == t.tasks_failed && s.partitions == t.partitions;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_fast_reply_path_decodes_as_the_full_parser_does) {
  // decode_reply scans usual replies without building a document; for
  // every input it must answer as the full parser alone does. Inputs: the
  // encoding of each op's reply, hand-written variants (key order,
  // whitespace, duplicates, escapes, floats, signs, unknown and nested
  // keys, missing fields), and each of them cut at every length and with
  // each byte replaced by each of a set of troublesome characters.
  std::vector<std::string> seeds;
  for (auto op : {control_op::ping, control_op::stats, control_op::active_queues,
                  control_op::add_consumer, control_op::cancel_consumer,
                  control_op::autoscale, control_op::shutdown}) {
    auto env = sample_reply(op);
    env.reply.queues = {"dq.w1", "q1"};
    seeds.push_back(encode_reply(env));
    env.reply.ok = false;
    env.reply.error = "nope";
    seeds.push_back(encode_reply(env));
  }
  for (std::string s : {
         R"( { "v" : 1 , "op":"ping", "from":"w1","id":"x","ok":true,"result":{} } )",
         R"({"result":{"pong":true,"more":[1,{"a":null},[]]},"x":false,"v":1,"op":"ping","from":"w1","id":"x","ok":true})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":{},"id":"y"})",
         R"({"v":1,"op":"ping","from":"w\u0031","id":"x","ok":true,"result":{}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":{"a":1.5}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":{"a":-1}})",
         R"({"v":1.0,"op":"ping","from":"w1","id":"x","ok":true,"result":{}})",
         R"({"v":01,"op":"ping","from":"w1","id":"x","ok":true,"result":{}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":[]})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":1,"result":{}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":false,"error":"e","result":7})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"error":5,"result":{}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"error":"e","result":{}})",
         R"({"v":1,"op":"autoscale","from":"w1","id":"x","ok":true,"result":{"max":4294967296,"min":1}})",
         R"({"v":1,"op":"autoscale","from":"w1","id":"x","ok":true,"result":{"max":3,"max":4,"min":1}})",
         R"({"v":1,"op":"active_queues","from":"w1","id":"x","ok":true,"result":{"queues":["a",1]}})",
         R"({"v":1,"op":"stats","from":"w1","id":"x","ok":true,"result":{"pid":2147483648,"uptime_ms":1,"autoscale":{"max":1,"min":1,"current":1},"tasks":{"done":1,"failed":0}}})",
         R"({"v":1,"op":"stats","from":"w1","id":"x","ok":true,"result":{"pid":1,"uptime_ms":18446744073709551615,"autoscale":{"max":1,"min":1,"current":1,"x":[]},"tasks":{"done":1,"failed":0},"partitions":{"a":1,"a":2}}})",
         R"({"v":1,"op":"stats","from":"w1","id":"x","ok":true,"result":{"pid":1,"uptime_ms":18446744073709551616,"autoscale":{"max":1,"min":1,"current":1},"tasks":{"done":1,"failed":0}}})",
         R"({"v":1,"op":"stats","from":"w1","id":"x","ok":true,"result":{"pid":1,"uptime_ms":1,"autoscale":{"max":1,"min":1},"tasks":{"done":1,"failed":0}}})",
         R"({"v":1,"op":"stats","from":"w1","id":"x","ok":true,"result":{"pid":1,"uptime_ms":1,"autoscale":{"max":1,"min":1,"current":1},"tasks":{"done":1,"failed":0},"partitions":{"a":-1}}})",
         R"({"v":1,"op":"stats","from":"wé","id":"x","ok":true,"result":{}})",
         R"({"v":1,"op":"explode","from":"w1","id":"x","ok":true,"result":{}})",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":{}} x)",
         R"({"v":1,"op":"ping","from":"w1","id":"x","ok":true,"result":{}}{})"})
    seeds.push_back(s);
  size_t inputs = 0;
  size_t fast_values = 0;
  auto check = [&](const std::string& in) {
    ++inputs;
    auto a = decode_reply(in);
    auto b = decode_reply_full(in);
    BOOST_TEST(same(a, b), "differs on: " << in << " (fast: " << a.error
                                           << ", full: " << b.error << ")");
    fast_values += a.value.has_value();
  };
  each_variant(seeds, check);
  BOOST_TEST(inputs > 50000u);
  BOOST_TEST(fast_values > 100u);
  // Oversized: refused as the full parser refuses it.
  check(std::string(max_wire_message + 1, ' '));
}

BOOST_AUTO_TEST_CASE(replies_are_written_as_the_full_encoder_writes_them) {
  // encode_reply writes ASCII replies directly; the bytes must be the full
  // encoder's, for every op, ok or not, with texts holding every ASCII
  // character (quotes, backslashes, controls, DEL) and numbers at their
  // limits. Non-ASCII texts go through the full encoder itself.
  std::string every_ascii;
  for (int c = 0; c < 128; ++c)
    every_ascii += static_cast<char>(c);
  std::vector<std::string> texts{"", "w1", every_ascii, "a\"b\\c\n\t\x01\x1f\x7f",
                                 "caf\xc3\xa9", "dq.w-1_x"};
  size_t written = 0;
  for (auto op : {control_op::ping, control_op::stats, control_op::active_queues,
                  control_op::add_consumer, control_op::cancel_consumer,
                  control_op::autoscale, control_op::shutdown})
    for (auto& text : texts)
      for (bool ok : {true, false}) {
        auto env = sample_reply(op);
        env.id = text;
        env.reply.instance = text;
        env.reply.ok = ok;
        env.reply.error = text;
        env.reply.queues = {text, "q1"};
        env.reply.stats.queues = {"q1", text};
        env.reply.stats.partitions[text] = UINT32_MAX;
        env.reply.stats.pid = text.size() % 2 == 0 ? INT32_MAX : -1;
        env.reply.stats.uptime_ms = UINT64_MAX;
        env.reply.stats.tasks_done = 0;
        env.reply.stats.autoscale_max = UINT32_MAX;
        auto fast = encode_reply(env);
        BOOST_TEST(fast == encode_reply_full(env));
        ++written;
        // And it reads back (a negative pid is refused, as it should be).
        if (ok && op == control_op::stats && env.reply.stats.pid < 0) {
          BOOST_TEST(!decode_reply(fast));
          continue;
        }
        auto back = decode_reply(fast);
        BOOST_REQUIRE_MESSAGE(back.value.has_value(), back.error);
        BOOST_TEST(back.value->id == text);
        BOOST_TEST(back.value->reply.instance == text);
      }
  BOOST_TEST(written == 7u * texts.size() * 2u);
}

BOOST_AUTO_TEST_CASE(strings_are_escaped_as_the_full_encoder_escapes_them) {
  // Every byte below 0x80 alone, first, last, twice in a row, between
  // plain runs, at every place of a text longer than the eight bytes taken
  // at a time, and UTF-8 around it: the bytes nlohmann's dump writes.
  std::vector<std::string> texts{"", "w1", "caf\xc3\xa9", "\xe2\x82\xac",
                                 std::string(40, 'a')};
  std::string utf8;
  for (int k = 0; k < 10; ++k)
    utf8 += "\xc3\xa9";
  for (int c = 0; c < 128; ++c) {
    std::string x(1, static_cast<char>(c));
    texts.insert(texts.end(), {x, x + "ab", "ab" + x, x + x, "ab" + x + "cd" + x,
                               "\xc3\xa9" + x + "\xc3\xa9"});
    for (size_t at = 0; at < 20; ++at)
      texts.push_back(std::string(at, 'a') + x + std::string(19 - at, 'b') + x
                      + utf8 + x + utf8);
  }
  for (auto& text : texts) {
    std::string out = "prefix";
    append_json_string(out, text);
    BOOST_TEST(out == "prefix" + nlohmann::json(text).dump(),
               "for the " << text.size() << " bytes " << nlohmann::json(text).dump());
  }
}

BOOST_AUTO_TEST_CASE(a_reader_decodes_commands_as_the_full_parser_does) {
  // decode_command_for scans the usual commands without a document; for
  // every input it must accept and refuse what decode_command does, with
  // the same fields, and say whether the reader is among the destinations.
  // Inputs: each op's encoding (to the reader, to others, to many), hand-
  // written variants, each cut at every length and with each byte
  // replaced by each of a set of troublesome characters.
  std::vector<std::string> seeds;
  for (auto op : {control_op::ping, control_op::stats, control_op::active_queues,
                  control_op::add_consumer, control_op::cancel_consumer,
                  control_op::autoscale, control_op::shutdown}) {
    command_envelope env;
    env.id = "b1-7";
    env.reply_to = "cyme.reply.b1";
    env.command.op = op;
    env.command.queue = "q1";
    env.command.max_concurrency = 8;
    env.command.min_concurrency = 2;
    env.command.destinations = {"w0", "w1", "w2"};
    seeds.push_back(encode_command(env));
    env.command.destinations = {"w2"};
    seeds.push_back(encode_command(env));
  }
  for (std::string s : {
         R"({"v":1,"id":"x","op":"ping","reply_to":"r"})",
         R"( { "to" : [ "w1" ] , "reply_to":"r","op":"ping","id":"x","v":1,"more":{"a":[1,null,true]} } )",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1"],"to":["w2"]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1"]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1"],"args":[]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1"],"args":{"queue":1}})",
         R"({"v":1,"id":"x","op":"add_consumer","reply_to":"r","to":["w1"],"args":{"queue":"q","queue":"p"}})",
         R"({"v":1,"id":"x","op":"add_consumer","reply_to":"r","to":["w1"],"args":{"queue":"a/b"}})",
         R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":["w1"],"args":{"max":10001,"min":1}})",
         R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":["w1"],"args":{"max":1,"min":0}})",
         R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":["w1"],"args":{"max":2.0,"min":1}})",
         R"({"v":1,"id":"","op":"ping","reply_to":"r","to":["w1"]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"../r","to":["w1"]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":"w1"})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1",2]})",
         R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["wé","w1"]})"})
    seeds.push_back(s);
  size_t inputs = 0, reached = 0;
  auto check = [&](const std::string& in) {
    ++inputs;
    bool addressed = false;
    auto a = decode_command_for(in, "w1", addressed);
    auto b = decode_command(in);
    BOOST_TEST(a.value.has_value() == b.value.has_value(), "on: " << in);
    if (!a.value || !b.value) {
      BOOST_TEST(a.error == b.error, "on: " << in);
      return;
    }
    const auto& to = b.value->command.destinations;
    BOOST_TEST(addressed == (std::find(to.begin(), to.end(), "w1") != to.end()),
               "on: " << in);
    reached += addressed;
    const auto& x = *a.value;
    const auto& y = *b.value;
    BOOST_TEST((x.id == y.id && x.reply_to == y.reply_to
                && x.command.op == y.command.op && x.command.queue == y.command.queue
                && x.command.max_concurrency == y.command.max_concurrency
                && x.command.min_concurrency == y.command.min_concurrency
                && x.command.destinations.empty()),
               "on: " << in);
  };
  each_variant(seeds, check);
  BOOST_TEST(inputs > 30000u);
  BOOST_TEST(reached > 100u);
  check(std::string(max_wire_message + 1, ' '));
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_rejected_with_a_reason) {
  // Garbage, truncation, wrong types, unknown ops, bad names, oversize.
  std::string good = R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":["w1"]})";
  BOOST_TEST(decode_command(good).value.has_value());
  for (std::string bad : {
         std::string{""}, std::string{"not json"}, good.substr(0, good.size() / 2),
         std::string{"[]"}, std::string{"42"},
         std::string{R"({"id":"x","op":"ping","reply_to":"r","to":["w1"]})"},
         std::string{R"({"v":2,"id":"x","op":"ping","reply_to":"r","to":[]})"},
         std::string{R"({"v":1,"id":7,"op":"ping","reply_to":"r","to":[]})"},
         std::string{R"({"v":1,"id":"x","op":"explode","reply_to":"r","to":[]})"},
         std::string{R"({"v":1,"id":"x","op":"ping","reply_to":"../r","to":[]})"},
         std::string{R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":"w1"})"},
         std::string{R"({"v":1,"id":"x","op":"ping","reply_to":"r","to":[1]})"},
         std::string{R"({"v":1,"id":"x","op":"add_consumer","reply_to":"r","to":[],"args":{}})"},
         std::string{R"({"v":1,"id":"x","op":"add_consumer","reply_to":"r","to":[],"args":{"queue":"a/b"}})"},
         std::string{R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":[],"args":{"max":1,"min":2}})"},
         std::string{R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":[],"args":{"max":-1,"min":1}})"},
         std::string{R"({"v":1,"id":"x","op":"autoscale","reply_to":"r","to":[],"args":"x"})"},
         std::string{R"({"v":1,"id":"","op":"ping","reply_to":"r","to":[]})"},
         std::string(max_wire_message + 1, ' ')}) {
    auto d = decode_command(bad);
    BOOST_TEST(!d, "accepted: " << bad.substr(0, 80));
    BOOST_TEST(!d.error.empty());
  }
}

BOOST_AUTO_TEST_CASE(tasks_and_results_round_trip) {
  // Task arguments and results stay JSON; failures keep their error.
  task_message t{"t1", "echo", R"({"a":[1,2]})"};
  auto back = decode_task(encode_task(t));
  BOOST_REQUIRE(back);
  BOOST_TEST(back.value->handler == "echo");
  BOOST_TEST(back.value->args_json == R"({"a":[1,2]})");
  task_result r;
  r.id = "t1";
  r.state = task_state::failure;
  r.error = "boom";
  r.instance = "w1";
  auto rb = decode_result(encode_result(r));
  BOOST_REQUIRE(rb);
  BOOST_TEST(rb.value->error == "boom");
  BOOST_TEST(to_string(rb.value->state) == "FAILURE");
  BOOST_TEST(!decode_task(R"({"v":1,"handler":"echo"})"));
  BOOST_TEST(!decode_result(R"({"v":1,"id":"x","state":"MAYBE"})"));
}

BOOST_AUTO_TEST_SUITE_END()
