#include "spool/spool.hpp"
