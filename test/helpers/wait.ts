// Polling with a deadline: the only way tests wait for a condition. One implementation,
// shared with the testbed (which lives in src/ so that `make demo` can run it from dist/).
export { poll as waitFor, PollAbort, type PollOptions as WaitOptions } from '../../src/testbed/poll.js';
