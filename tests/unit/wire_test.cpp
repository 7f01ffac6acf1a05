// The JSON wire format of the control protocol and of tasks: round trips,
// and every malformed input rejected with a reason instead of a crash.
#include <boost/test/unit_test.hpp>

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

BOOST_AUTO_TEST_CASE(replies_round_trip) {
  // A stats reply keeps every field; an error reply keeps its message.
  reply_envelope env;
  env.id = "b1-8";
  env.op = control_op::stats;
  env.reply.instance = "w1";
  env.reply.stats.pid = 42;
  env.reply.stats.queues = {"dq.w1", "q1"};
  env.reply.stats.autoscale_max = 4;
  env.reply.stats.autoscale_min = 1;
  env.reply.stats.concurrency = 2;
  env.reply.stats.tasks_done = 10;
  env.reply.stats.tasks_failed = 1;
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
