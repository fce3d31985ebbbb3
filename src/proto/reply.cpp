#include "proto/reply.hpp"
