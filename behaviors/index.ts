// The built-in behaviors, listed explicitly: no directory scan, no side-effect registration.
// A test checks that this list and the files in behaviors/ agree.
import type { Behavior } from '../src/behavior.js'
import latency from './latency.js'
import noop from './noop.js'

export const builtins: readonly Behavior[] = [latency, noop]
