// Name, broker and spec validation: what may become a path, topic or
// argument.
#include <boost/test/unit_test.hpp>

#include "messages/names.hpp"

using namespace cyme;

namespace {

instance_spec valid_spec() {
  instance_spec s;
  s.name = "w1";
  s.app = "app";
  s.queues = {"q1", "q2"};
  s.max_concurrency = 4;
  s.min_concurrency = 2;
  s.broker = "127.0.0.1:9092";
  return s;
}

} // namespace

BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(good_names_pass) {
  // Letters, digits, '.', '_' and '-', starting with a letter or digit.
  for (std::string n : {std::string{"w1"}, std::string{"worker-1"},
                        std::string{"a.b_c"}, std::string{"0"},
                        std::string{"6f1c2a9e-3b4d-4c5e-8f90-1a2b3c4d5e6f"},
                        std::string(64, 'x')})
    BOOST_TEST(name_problem("instance", n).empty(), n);
}

BOOST_AUTO_TEST_CASE(dangerous_names_are_rejected) {
  // Empty, too long, traversal, separators, shell and control characters.
  for (std::string n : {std::string{}, std::string(65, 'x'), std::string{".."},
                        std::string{"../etc"}, std::string{"a/b"},
                        std::string{"-rf"}, std::string{"a b"},
                        std::string{"a;rm"}, std::string{"$(id)"},
                        std::string{"a\nb"}, std::string{"_x"},
                        std::string{"a\0b", 3}})
    BOOST_TEST(!name_problem("queue", n).empty(), "accepted '" << n << "'");
  BOOST_TEST(name_problem("queue", "").find("queue name is empty") == 0u);
}

BOOST_AUTO_TEST_CASE(brokers_are_host_port_lists) {
  // host:port[,host:port]; empty means the default broker.
  BOOST_TEST(broker_problem("").empty());
  BOOST_TEST(broker_problem("localhost:9092").empty());
  BOOST_TEST(broker_problem("10.0.0.1:9092,kafka-2:9093").empty());
  for (auto b : {"localhost", ":9092", "host:", "host:0", "host:70000",
                 "host:9092,", "ho st:1", "host:12a", "h;x:1"})
    BOOST_TEST(!broker_problem(b).empty(), "accepted '" << b << "'");
}

BOOST_AUTO_TEST_CASE(only_loopback_addresses_count_as_loopback) {
  // What --node may bind without TLS or --node-insecure: 127.0.0.0/8, ::1,
  // localhost; every other address, the wildcards included, may be
  // reachable from elsewhere.
  for (auto h : {"127.0.0.1", "127.255.0.9", "localhost", "LocalHost", "::1",
                 "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"})
    BOOST_TEST(loopback_host(h), h);
  for (auto h : {"0.0.0.0", "::", "[::]", "10.0.0.1", "128.0.0.1",
                 "192.168.1.127", "::ffff:10.0.0.1", "::2", "localhost.evil",
                 "127.0.0.1.example.com", "myhost", "", "[]", "127.1"})
    BOOST_TEST(!loopback_host(h), h);
}

BOOST_AUTO_TEST_CASE(valid_spec_passes) {
  // The reference spec is valid.
  BOOST_TEST(spec_problem(valid_spec()).empty());
}

BOOST_AUTO_TEST_CASE(max_below_min_is_rejected) {
  // max_concurrency < min_concurrency is an error naming both.
  auto s = valid_spec();
  s.max_concurrency = 1;
  s.min_concurrency = 2;
  auto p = spec_problem(s);
  BOOST_TEST(p.find("max_concurrency (1) is less than min_concurrency (2)")
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_specs_are_rejected) {
  // Each broken field is caught.
  auto s = valid_spec();
  s.name = "";
  BOOST_TEST(!spec_problem(s).empty());
  s = valid_spec();
  s.app = "a/b";
  BOOST_TEST(!spec_problem(s).empty());
  s = valid_spec();
  s.queues = {"q1", "q1"};
  BOOST_TEST(spec_problem(s).find("listed twice") != std::string::npos);
  s = valid_spec();
  s.queues = {"dq.w1"};
  BOOST_TEST(spec_problem(s).find("direct queue") != std::string::npos);
  s = valid_spec();
  s.min_concurrency = 0;
  s.max_concurrency = 0;
  BOOST_TEST(!spec_problem(s).empty());
  s = valid_spec();
  s.broker = "nowhere";
  BOOST_TEST(!spec_problem(s).empty());
}

BOOST_AUTO_TEST_SUITE_END()
