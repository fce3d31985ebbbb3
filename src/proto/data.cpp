#include "proto/data.hpp"
