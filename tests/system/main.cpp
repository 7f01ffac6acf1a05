#define BOOST_TEST_MODULE cyme system tests
#include <boost/test/unit_test.hpp>
