#include "proto/address.hpp"
