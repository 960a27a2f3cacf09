/*
 * csp.h - what the csp files share: wait queues (waitq.h) and context
 * watches (export.h, which the layers above see too).
 */
#ifndef TERN_CSP_H
#define TERN_CSP_H

#include "csp/export.h"
#include "csp/waitq.h"
#include "tern/chan.h"
#include "tern/context.h"

#endif
