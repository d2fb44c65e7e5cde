import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestPki {
  readonly dir: string;
  /** the CA that signs the gateway's certificate and the stations' */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** a client certificate and key whose common name is `name` */
  client(name: string): { cert: string; key: string };
}

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and client certificates, made with openssl. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'cxr-pki-'));
  const file = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=cxr-test-ca');
  const issue = (name: string, extensions: string): void => {
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(file(`${name}.ext`), extensions);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  issue('localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const clients = new Set<string>();
  return {
    dir,
    caCert: file('ca.pem'),
    serverCert: file('localhost.pem'),
    serverKey: file('localhost.key'),
    client(name) {
      if (!clients.has(name)) {
        issue(name, 'extendedKeyUsage=clientAuth\n');
        clients.add(name);
      }
      return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
    },
  };
}
