// The adoption a process driver sends a standby worker
// (messages/adoption.hpp): what it encodes decodes to the same, and every
// malformed or unusable adoption is refused with a reason.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "messages/adoption.hpp"
#include "messages/names.hpp"

using namespace cyme;

namespace {

adoption sample() {
  adoption a;
  a.name = "w-1.a";
  a.queues = {"q1", "q2"};
  a.min_concurrency = 2;
  a.max_concurrency = 8;
  a.instance_dir = "/var/lib/cyme/instances/w-1.a";
  a.control_since_ms = 1764583200123;
  return a;
}

/// Why `text` is refused; empty when it is accepted.
std::string refusal(const std::string& text) {
  std::string problem;
  auto x = decode_adoption(text, problem);
  BOOST_TEST(x.has_value() == problem.empty(), text);
  return problem;
}

} // namespace

BOOST_AUTO_TEST_SUITE(adoption_codec)

BOOST_AUTO_TEST_CASE(what_is_encoded_decodes_the_same) {
  for (auto queues : {std::vector<std::string>{},
                      std::vector<std::string>{"only"}, sample().queues}) {
    auto a = sample();
    a.queues = queues;
    std::string problem;
    auto b = decode_adoption(encode_adoption(a), problem);
    BOOST_TEST_REQUIRE(b.has_value(), problem);
    BOOST_TEST(b->name == a.name);
    BOOST_TEST(b->queues == a.queues);
    BOOST_TEST(b->min_concurrency == a.min_concurrency);
    BOOST_TEST(b->max_concurrency == a.max_concurrency);
    BOOST_TEST(b->instance_dir == a.instance_dir);
    BOOST_TEST(b->control_since_ms == a.control_since_ms);
  }
}

BOOST_AUTO_TEST_CASE(keys_come_in_any_order) {
  BOOST_TEST(refusal("control_since_ms=-1\ninstance_dir=/r/w\nmax=1\nmin=1\n"
                     "queues=\nname=w\n")
             == "");
}

BOOST_AUTO_TEST_CASE(malformed_adoptions_are_refused_with_a_reason) {
  auto good = encode_adoption(sample());
  auto without = [&](const std::string& key) {
    auto at = good.find(key + "=");
    auto end = good.find('\n', at);
    return good.substr(0, at) + good.substr(end + 1);
  };
  struct {
    std::string text;
    std::string says;
  } cases[] = {
    {good + "extra=1\n", "unknown adoption key 'extra'"},
    {good + "name=w2\n", "adoption key 'name' given twice"},
    {without("name"), "adoption without 'name'"},
    {without("queues"), "adoption without 'queues'"},
    {without("control_since_ms"), "adoption without 'control_since_ms'"},
    {good.substr(0, good.size() - 1), "does not end with a newline"},
    {good + "garbage\n", "line without '='"},
    {"", "adoption without 'name'"},
    {std::string(max_adoption_size + 1, 'x'), "is larger than"},
  };
  for (auto& c : cases) {
    auto why = refusal(c.text);
    BOOST_TEST(why.find(c.says) != std::string::npos, why << " | " << c.says);
  }
}

BOOST_AUTO_TEST_CASE(unusable_values_are_refused) {
  auto with = [](auto change) {
    auto a = sample();
    change(a);
    return refusal(encode_adoption(a));
  };
  BOOST_TEST(with([](adoption& a) { a.name = ".hidden"; })
               .find("must start with a letter or digit")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.name = std::string(65, 'a'); })
               .find("longer than")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.queues = {"q1", "q1"}; })
               .find("listed twice")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.queues = {"q1", "bad queue"}; })
               .find("may only hold")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.min_concurrency = 9; }) != "");
  BOOST_TEST(with([](adoption& a) { a.instance_dir = "relative/w-1.a"; })
               .find("absolute path ending in the instance name")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.instance_dir = "/r/other"; })
               .find("absolute path ending in the instance name")
             != std::string::npos);
  BOOST_TEST(with([](adoption& a) { a.control_since_ms = -5; })
               .find("control_since_ms")
             != std::string::npos);
  BOOST_TEST(refusal("name=w\nqueues=\nmin=x\nmax=1\ninstance_dir=/r/w\n"
                     "control_since_ms=1\n")
               .find("whole numbers")
             != std::string::npos);
  BOOST_TEST(refusal("name=w\nqueues=\nmin=1\nmax=1\ninstance_dir=/r/w\n"
                     "control_since_ms=12x\n")
               .find("control_since_ms")
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_adoption_crosses_a_socket_with_its_log_descriptor) {
  int ends[2];
  BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) == 0);
  adoption got;
  int log_fd = -1;
  std::string problem;
  BOOST_TEST((receive_adoption(ends[1], got, log_fd, problem)
              == adoption_read::nothing));
  int pipe_ends[2];
  BOOST_TEST_REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);
  BOOST_TEST(send_adoption(ends[0], sample(), pipe_ends[1]) == "");
  BOOST_TEST_REQUIRE((receive_adoption(ends[1], got, log_fd, problem)
                      == adoption_read::adopted),
                     problem);
  BOOST_TEST(got.name == sample().name);
  // The descriptor received is the pipe's write end.
  BOOST_TEST_REQUIRE(log_fd >= 0);
  BOOST_TEST(::write(log_fd, "x", 1) == 1);
  char c = 0;
  BOOST_TEST(::read(pipe_ends[0], &c, 1) == 1);
  BOOST_TEST(c == 'x');
  ::close(log_fd);
  // Bytes that are no adoption: ended, saying why, the descriptor closed.
  BOOST_TEST(send_with_descriptor(ends[0], "name=w1\n", pipe_ends[1]) == "");
  log_fd = -1;
  BOOST_TEST((receive_adoption(ends[1], got, log_fd, problem)
              == adoption_read::ended));
  BOOST_TEST(problem == "adoption without 'queues'");
  BOOST_TEST(log_fd == -1);
  // Without a descriptor: ended.
  problem.clear();
  BOOST_TEST(send_with_descriptor(ends[0], encode_adoption(sample()), -1) == "");
  BOOST_TEST((receive_adoption(ends[1], got, log_fd, problem)
              == adoption_read::ended));
  BOOST_TEST(problem.find("without the instance's log descriptor") != std::string::npos);
  // The other end gone: ended, with no problem to tell.
  ::close(ends[0]);
  problem.clear();
  BOOST_TEST((receive_adoption(ends[1], got, log_fd, problem)
              == adoption_read::ended));
  BOOST_TEST(problem == "");
  ::close(ends[1]);
  ::close(pipe_ends[0]);
  ::close(pipe_ends[1]);
}

BOOST_AUTO_TEST_CASE(the_placeholder_has_room_for_every_name) {
  BOOST_TEST(standby_placeholder().size() == max_name_length);
  BOOST_TEST(name_problem("instance", standby_placeholder()) != "",
             "no instance can be named like the placeholder");
}

BOOST_AUTO_TEST_SUITE_END()
