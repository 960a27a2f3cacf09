/*
 * tern/tern.h - everything tern offers, one include.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include "tern/error.h"
#include "tern/runtime.h"

#endif
