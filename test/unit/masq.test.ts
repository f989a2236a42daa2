import { describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { masqRules } from '../../src/dataplane/masq.js';

describe('--ip-masq rules', () => {
  it("renders flannel's four rules into weft's own chain, in one nat transaction", () => {
    expect(masqRules(Cidr.parse('10.5.0.0/16')!, Cidr.parse('10.5.7.0/24')!).split('\n')).toEqual([
      '*nat',
      ':WEFT-POSTRTG - [0:0]',
      '-A WEFT-POSTRTG -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "weft: container to container" -j RETURN',
      '-A WEFT-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "weft: container to the world" -j MASQUERADE --random-fully',
      '-A WEFT-POSTRTG ! -s 10.5.0.0/16 -d 10.5.7.0/24 -m comment --comment "weft: to local containers" -j RETURN',
      '-A WEFT-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "weft: host to remote containers" -j MASQUERADE --random-fully',
      'COMMIT',
      '',
    ]);
  });
});
