#define BOOST_TEST_MODULE cyme integration tests
#include <boost/test/unit_test.hpp>
