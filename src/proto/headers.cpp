#include "proto/headers.hpp"
