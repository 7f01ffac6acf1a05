#define BOOST_TEST_MODULE cyme unit tests
#include <boost/test/unit_test.hpp>
