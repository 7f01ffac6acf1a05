// Supervisor settings: the seed's defaults, and rejection of bad values.
#include <boost/test/unit_test.hpp>

#include "actors/supervisor_settings.hpp"

using namespace cyme;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(settings)

BOOST_AUTO_TEST_CASE(defaults_are_the_seeds) {
  // interval 60 s, restart_max_rate 1/m, wait_after_broker_revived 35 s.
  supervisor_settings s;
  BOOST_TEST((s.interval == caf::timespan{60s}));
  BOOST_TEST(s.restart_max_rate == "1/m");
  BOOST_TEST((s.wait_after_broker_revived == caf::timespan{35s}));
  BOOST_TEST(s.set_as_current);
  BOOST_TEST(settings_problem(s).empty());
}

BOOST_AUTO_TEST_CASE(bad_settings_are_rejected) {
  // Zero or negative interval, bad rates, negative wait.
  supervisor_settings s;
  s.interval = caf::timespan{0};
  BOOST_TEST(settings_problem(s).find("interval") != std::string::npos);
  s = supervisor_settings{};
  s.interval = -caf::timespan{1s};
  BOOST_TEST(!settings_problem(s).empty());
  s = supervisor_settings{};
  s.restart_max_rate = "often";
  BOOST_TEST(settings_problem(s).find("restart_max_rate") != std::string::npos);
  s = supervisor_settings{};
  s.respawn_max_rate = "0/m";
  BOOST_TEST(settings_problem(s).find("respawn_max_rate") != std::string::npos);
  s = supervisor_settings{};
  s.wait_after_broker_revived = -caf::timespan{1s};
  BOOST_TEST(!settings_problem(s).empty());
  s = supervisor_settings{};
  s.probe_timeout = caf::timespan{0};
  BOOST_TEST(!settings_problem(s).empty());
}

BOOST_AUTO_TEST_CASE(bad_bus_suspicion_settings_are_rejected) {
  // A threshold outside (0, 1], no minimum of misses, a bad rate.
  supervisor_settings s;
  BOOST_TEST(s.bus_suspect_threshold == 0.55);
  for (double bad : {0.0, -0.1, 1.01}) {
    s = supervisor_settings{};
    s.bus_suspect_threshold = bad;
    BOOST_TEST(settings_problem(s).find("bus_suspect_threshold")
                 != std::string::npos,
               bad);
  }
  s = supervisor_settings{};
  s.bus_suspect_threshold = 1;
  BOOST_TEST(settings_problem(s).empty());
  s = supervisor_settings{};
  s.bus_suspect_min_misses = 0;
  BOOST_TEST(settings_problem(s).find("bus_suspect_min_misses")
             != std::string::npos);
  s = supervisor_settings{};
  s.bus_suspect_restart_rate = "fast";
  BOOST_TEST(settings_problem(s).find("bus_suspect_restart_rate")
             != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
