#define BOOST_TEST_MODULE cyme supervisor scenarios
#include <boost/test/unit_test.hpp>
