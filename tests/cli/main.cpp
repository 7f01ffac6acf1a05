#define BOOST_TEST_MODULE cyme cli tests
#include <boost/test/unit_test.hpp>
