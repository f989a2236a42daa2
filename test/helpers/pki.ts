// The throwaway PKI lives with the testbed (src/ cannot import test/); tests use it from here.
export { createPki, SERVER_DNS, SERVER_IPS, type CertPair, type Pki } from '../../src/testbed/pki.js';
