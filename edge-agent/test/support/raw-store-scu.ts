/**
 * A minimal DICOM storage SCU written straight onto a net.Socket, for tests that need what DCMTK will not send: a
 * transfer cut or reset mid-dataset, an A-ABORT mid-dataset, a sender that stalls, and dataset bytes that are not
 * valid DICOM (DCMTK refuses or re-encodes malformed files).
 *
 * One association carries one presentation context (id 1): the abstract syntax and transfer syntax given to
 * `associate()`. `storeRaw()` sends a C-STORE-RQ command, then the dataset bytes exactly as given, in P-DATA-TF PDUs
 * that fit the SCP's maximum PDU length, and reports the C-STORE-RSP status or how the connection ended.
 *
 *   const scu = await RawStoreScu.associate({ port, sopClassUid, transferSyntaxUid });
 *   const { status, end } = await scu.storeRaw({ sopInstanceUid, dataset, cutAfterBytes: 100_000 });
 *   await scu.release(); // or scu.abort()
 *
 * Only what a storage SCU needs of PS3.8 is here: no extended negotiation, no asynchronous operations.
 */
import net from 'node:net';

export interface RawAssociateOptions {
  readonly port: number;
  /** default 127.0.0.1 */
  readonly host?: string;
  /** default CXR_EDGE */
  readonly calledAe?: string;
  /** default RAW_SCU */
  readonly callingAe?: string;
  /** abstract syntax of the one presentation context */
  readonly sopClassUid: string;
  readonly transferSyntaxUid: string;
  /** the largest PDU we take; default 16 KiB */
  readonly maxPduLength?: number;
  /** how long to wait for any answer of the SCP; default 30 s */
  readonly timeoutMs?: number;
}

export interface RawStoreRequest {
  /** Affected SOP Class UID in the command; default the context's abstract syntax. */
  readonly sopClassUid?: string;
  readonly sopInstanceUid: string;
  /** The dataset as it goes on the wire, in the association's transfer syntax (or any bytes at all). */
  readonly dataset: Uint8Array;
  /** Send this many dataset bytes, then close the connection (TCP FIN) without a word. */
  readonly cutAfterBytes?: number;
  /** Send this many dataset bytes, then reset the connection (TCP RST: the SCP's socket errors). */
  readonly resetAfterBytes?: number;
  /** Send this many dataset bytes, then an A-ABORT, then close. */
  readonly abortAfterBytes?: number;
  /** Send this many dataset bytes, then nothing more: keep the connection open and wait for the SCP to act. */
  readonly stallAfterBytes?: number;
  /** default: one more than the previous message on this association */
  readonly messageId?: number;
  /**
   * Called once the bytes before a cut, reset, abort or stall are sent, before the fault itself: a test can wait
   * there until the SCP holds them (a reset makes the SCP's kernel drop what it has not read yet).
   */
  readonly beforeFault?: () => Promise<void> | void;
}

/**
 * How a store ended. `response`: the SCP answered (see `status`), the association stays up. `peer-aborted`: the SCP
 * sent an A-ABORT. `peer-closed`: the SCP closed the connection without answering. `cut` and `aborted`: we ended it
 * as asked (`status` is set if the SCP answered anyway). `reset`: we reset it as asked (nothing more is read).
 * `no-answer`: nothing came within the timeout.
 */
export type RawStoreEnd = 'response' | 'peer-aborted' | 'peer-closed' | 'cut' | 'reset' | 'aborted' | 'no-answer';

export interface RawStoreResult {
  /** The C-STORE-RSP status (0 is Success), when the SCP answered. */
  readonly status: number | undefined;
  readonly end: RawStoreEnd;
  readonly datasetBytesSent: number;
  /** Milliseconds from the last byte we sent to the end. */
  readonly waitedMs: number;
}

export class AssociationRejectedError extends Error {
  constructor(
    message: string,
    readonly detail: { result?: number; source?: number; reason?: number },
  ) {
    super(message);
    this.name = 'AssociationRejectedError';
  }
}

const PduType = { AssociateRq: 0x01, AssociateAc: 0x02, AssociateRj: 0x03, PData: 0x04, ReleaseRq: 0x05, ReleaseRp: 0x06, Abort: 0x07 } as const;
const ApplicationContext = '1.2.840.10008.3.1.1.1';
const ImplementationClassUid = '1.2.826.0.1.3680043.10.1417.9.1';
const ImplementationVersion = 'CXR_RAW_SCU';
const ContextId = 1;

interface Pdu {
  readonly type: number;
  readonly body: Buffer;
}
type WireEvent = { readonly kind: 'pdu'; readonly pdu: Pdu } | { readonly kind: 'closed' } | { readonly kind: 'timeout' };

export class RawStoreScu {
  readonly #socket: net.Socket;
  readonly #timeoutMs: number;
  readonly #events: WireEvent[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #received = Buffer.alloc(0);
  #messageId = 0;
  #associated = false;
  #defaultSopClass = '';
  /** Largest P-DATA-TF variable field the SCP takes (0: no limit). */
  peerMaxPduLength = 0;
  acceptedTransferSyntaxUid = '';

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#push({ kind: 'closed' });
    });
  }

  /** Connects and negotiates one presentation context; throws AssociationRejectedError when refused. */
  static async associate(options: RawAssociateOptions): Promise<RawStoreScu> {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port: options.port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const scu = new RawStoreScu(socket, options.timeoutMs ?? 30_000);
    scu.#defaultSopClass = options.sopClassUid;
    await scu.#write(associateRq(options));
    const event = await scu.#next(Date.now() + scu.#timeoutMs);
    if (event.kind !== 'pdu') {
      scu.destroy();
      throw new AssociationRejectedError(`no association: ${event.kind === 'closed' ? 'connection closed' : 'no answer'}`, {});
    }
    const { type, body } = event.pdu;
    if (type === PduType.AssociateRj) {
      scu.destroy();
      throw new AssociationRejectedError('association rejected', { result: body[1], source: body[2], reason: body[3] });
    }
    if (type !== PduType.AssociateAc) {
      scu.destroy();
      throw new AssociationRejectedError(`unexpected PDU type ${type} in answer to A-ASSOCIATE-RQ`, {});
    }
    const ac = parseAssociateAc(body);
    if (ac.result !== 0 || !ac.transferSyntaxUid) {
      scu.destroy();
      throw new AssociationRejectedError(`presentation context refused (result ${ac.result})`, { result: ac.result });
    }
    scu.acceptedTransferSyntaxUid = ac.transferSyntaxUid;
    scu.peerMaxPduLength = ac.maxPduLength;
    scu.#associated = true;
    return scu;
  }

  /** Whether the association is still up (negotiated, not released, aborted or closed). */
  get associated(): boolean {
    return this.#associated && !this.#closed;
  }

  /** Sends one C-STORE, or part of one (see the `...AfterBytes` options). */
  async storeRaw(request: RawStoreRequest): Promise<RawStoreResult> {
    if (!this.associated) throw new Error('not associated');
    const faults = [request.cutAfterBytes, request.resetAfterBytes, request.abortAfterBytes, request.stallAfterBytes].filter((n) => n !== undefined);
    if (faults.length > 1) throw new Error('give at most one of cutAfterBytes, resetAfterBytes, abortAfterBytes, stallAfterBytes');
    const limit = Math.min(request.dataset.length, faults[0] ?? request.dataset.length);
    const complete = limit === request.dataset.length;
    this.#messageId = request.messageId ?? (this.#messageId % 0xffff) + 1;
    const command = cStoreCommand(request.sopClassUid ?? this.#defaultSopClass, request.sopInstanceUid, this.#messageId);
    await this.#write(pData(command, true, true));
    const fragment = Math.max(1, (this.peerMaxPduLength === 0 ? 16_384 : Math.min(this.peerMaxPduLength, 1 << 20)) - 6);
    let sent = 0;
    // An empty dataset still goes as one (empty) last fragment.
    do {
      const end = Math.min(limit, sent + fragment);
      const last = complete && end === request.dataset.length;
      if (this.#closed) break;
      await this.#write(pData(request.dataset.subarray(sent, end), false, last));
      sent = end;
    } while (sent < limit);
    const started = Date.now();
    if (faults.length > 0) await request.beforeFault?.();
    const done = (end: RawStoreEnd, status: number | undefined): RawStoreResult => ({ status, end, datasetBytesSent: sent, waitedMs: Date.now() - started });

    if (request.cutAfterBytes !== undefined) {
      this.#associated = false;
      this.#socket.end();
      const status = await this.#drainUntilClosed(started + this.#timeoutMs);
      return done('cut', status);
    }
    if (request.resetAfterBytes !== undefined) {
      this.#associated = false;
      this.#socket.resetAndDestroy();
      return done('reset', undefined);
    }
    if (request.abortAfterBytes !== undefined) {
      this.#associated = false;
      await this.#write(abortPdu(0, 0)).catch(() => undefined);
      this.#socket.end();
      const status = await this.#drainUntilClosed(started + this.#timeoutMs);
      return done('aborted', status);
    }
    const answer = await this.#awaitResponse(started + this.#timeoutMs);
    return done(answer.end, answer.status);
  }

  /** A-RELEASE-RQ, waits for A-RELEASE-RP, closes. Does nothing when the association is gone already. */
  async release(): Promise<void> {
    if (!this.associated) {
      this.destroy();
      return;
    }
    this.#associated = false;
    await this.#write(Buffer.from([PduType.ReleaseRq, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    const deadline = Date.now() + this.#timeoutMs;
    for (;;) {
      const event = await this.#next(deadline);
      if (event.kind !== 'pdu' || event.pdu.type === PduType.ReleaseRp || event.pdu.type === PduType.Abort) break;
    }
    this.#socket.end();
    this.destroy();
  }

  /** Sends an A-ABORT (service user) and closes. */
  async abort(): Promise<void> {
    if (this.associated) {
      this.#associated = false;
      await this.#write(abortPdu(0, 0)).catch(() => undefined);
      this.#socket.end();
    }
    this.destroy();
  }

  destroy(): void {
    this.#associated = false;
    this.#socket.destroy();
  }

  async #awaitResponse(deadline: number): Promise<{ end: RawStoreEnd; status: number | undefined }> {
    let command = Buffer.alloc(0);
    for (;;) {
      const event = await this.#next(deadline);
      if (event.kind === 'timeout') return { end: 'no-answer', status: undefined };
      if (event.kind === 'closed') {
        this.#associated = false;
        return { end: 'peer-closed', status: undefined };
      }
      if (event.pdu.type === PduType.Abort) {
        this.#associated = false;
        this.destroy();
        return { end: 'peer-aborted', status: undefined };
      }
      if (event.pdu.type !== PduType.PData) continue;
      for (const pdv of parsePdvs(event.pdu.body)) {
        if (!pdv.isCommand) continue;
        command = Buffer.concat([command, pdv.value]);
        if (pdv.isLast) return { end: 'response', status: commandStatus(command) };
      }
    }
  }

  /** After we ended our side: whatever the SCP still says, until it closes. Returns a C-STORE-RSP status if one came. */
  async #drainUntilClosed(deadline: number): Promise<number | undefined> {
    let status: number | undefined;
    let command = Buffer.alloc(0);
    for (;;) {
      const event = await this.#next(deadline);
      if (event.kind !== 'pdu') break;
      if (event.pdu.type !== PduType.PData) continue;
      for (const pdv of parsePdvs(event.pdu.body)) {
        if (!pdv.isCommand) continue;
        command = Buffer.concat([command, pdv.value]);
        if (pdv.isLast) {
          status = commandStatus(command);
          command = Buffer.alloc(0);
        }
      }
    }
    this.destroy();
    return status;
  }

  #onData(chunk: Buffer): void {
    this.#received = Buffer.concat([this.#received, chunk]);
    while (this.#received.length >= 6) {
      const length = this.#received.readUInt32BE(2);
      if (this.#received.length < 6 + length) break;
      const type = this.#received[0] as number;
      const body = this.#received.subarray(6, 6 + length);
      this.#received = this.#received.subarray(6 + length);
      this.#push({ kind: 'pdu', pdu: { type, body: Buffer.from(body) } });
    }
  }

  #push(event: WireEvent): void {
    this.#events.push(event);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #next(deadline: number): Promise<WireEvent> {
    for (;;) {
      const event = this.#events.shift();
      if (event) return event;
      if (this.#closed) return { kind: 'closed' };
      const wait = deadline - Date.now();
      if (wait <= 0) return { kind: 'timeout' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async #write(bytes: Buffer): Promise<void> {
    if (this.#closed || this.#socket.writableEnded) return;
    if (this.#socket.write(bytes)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#socket.off('drain', done).off('close', done);
        resolve();
      };
      this.#socket.once('drain', done).once('close', done);
    });
  }
}

/** Associates, sends one (possibly broken) C-STORE, releases if the association is still up. For fuzzing loops. */
export async function storeOnce(options: RawAssociateOptions & RawStoreRequest): Promise<RawStoreResult> {
  const scu = await RawStoreScu.associate(options);
  try {
    const result = await scu.storeRaw(options);
    if (scu.associated) await scu.release();
    return result;
  } finally {
    scu.destroy();
  }
}

function associateRq(options: RawAssociateOptions): Buffer {
  const aeField = (ae: string): Buffer => Buffer.from(ae.padEnd(16, ' ').slice(0, 16), 'latin1');
  const item = (type: number, value: Buffer): Buffer => {
    const header = Buffer.alloc(4);
    header[0] = type;
    header.writeUInt16BE(value.length, 2);
    return Buffer.concat([header, value]);
  };
  const uid = (value: string): Buffer => Buffer.from(value, 'latin1');
  const context = item(
    0x20,
    Buffer.concat([Buffer.from([ContextId, 0, 0, 0]), item(0x30, uid(options.sopClassUid)), item(0x40, uid(options.transferSyntaxUid))]),
  );
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(options.maxPduLength ?? 16_384);
  const userInfo = item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, uid(ImplementationClassUid)), item(0x55, uid(ImplementationVersion))]));
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0); // protocol version
  aeField(options.calledAe ?? 'CXR_EDGE').copy(fixed, 4);
  aeField(options.callingAe ?? 'RAW_SCU').copy(fixed, 20);
  return pdu(PduType.AssociateRq, Buffer.concat([fixed, item(0x10, uid(ApplicationContext)), context, userInfo]));
}

function parseAssociateAc(body: Buffer): { result: number; transferSyntaxUid: string; maxPduLength: number } {
  let result = -1;
  let transferSyntaxUid = '';
  let maxPduLength = 0;
  let pos = 68;
  while (pos + 4 <= body.length) {
    const type = body[pos] as number;
    const length = body.readUInt16BE(pos + 2);
    const value = body.subarray(pos + 4, pos + 4 + length);
    if (type === 0x21 && value[0] === ContextId) {
      result = value[2] ?? -1;
      let sub = 4;
      while (sub + 4 <= value.length) {
        const subLength = value.readUInt16BE(sub + 2);
        if (value[sub] === 0x40) transferSyntaxUid = value.subarray(sub + 4, sub + 4 + subLength).toString('latin1').replace(/\0+$/u, '');
        sub += 4 + subLength;
      }
    } else if (type === 0x50) {
      let sub = 0;
      while (sub + 4 <= value.length) {
        const subLength = value.readUInt16BE(sub + 2);
        if (value[sub] === 0x51 && subLength === 4) maxPduLength = value.readUInt32BE(sub + 4);
        sub += 4 + subLength;
      }
    }
    pos += 4 + length;
  }
  return { result, transferSyntaxUid, maxPduLength };
}

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6);
  header[0] = type;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function pData(value: Uint8Array, isCommand: boolean, isLast: boolean): Buffer {
  const pdv = Buffer.alloc(6);
  pdv.writeUInt32BE(value.length + 2, 0);
  pdv[4] = ContextId;
  pdv[5] = (isCommand ? 0x01 : 0) | (isLast ? 0x02 : 0);
  return pdu(PduType.PData, Buffer.concat([pdv, value]));
}

function abortPdu(source: number, reason: number): Buffer {
  return pdu(PduType.Abort, Buffer.from([0, 0, source, reason]));
}

function parsePdvs(body: Buffer): { isCommand: boolean; isLast: boolean; value: Buffer }[] {
  const out: { isCommand: boolean; isLast: boolean; value: Buffer }[] = [];
  let pos = 0;
  while (pos + 6 <= body.length) {
    const length = body.readUInt32BE(pos);
    const flags = body[pos + 5] as number;
    out.push({ isCommand: (flags & 0x01) !== 0, isLast: (flags & 0x02) !== 0, value: body.subarray(pos + 6, pos + 4 + length) });
    pos += 4 + length;
  }
  return out;
}

/** C-STORE-RQ command set, Implicit VR Little Endian as PS3.7 requires, with its group length. */
function cStoreCommand(sopClassUid: string, sopInstanceUid: string, messageId: number): Buffer {
  const element = (elementNumber: number, value: Buffer): Buffer => {
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0x0000, 0);
    header.writeUInt16LE(elementNumber, 2);
    header.writeUInt32LE(value.length, 4);
    return Buffer.concat([header, value]);
  };
  const us = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  const ui = (value: string): Buffer => {
    const b = Buffer.from(value, 'latin1');
    return b.length % 2 === 0 ? b : Buffer.concat([b, Buffer.from([0])]);
  };
  const body = Buffer.concat([
    element(0x0002, ui(sopClassUid)),
    element(0x0100, us(0x0001)), // C-STORE-RQ
    element(0x0110, us(messageId)),
    element(0x0700, us(0x0000)), // medium priority
    element(0x0800, us(0x0000)), // a dataset follows
    element(0x1000, ui(sopInstanceUid)),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([element(0x0000, groupLength), body]);
}

/** Status (0000,0900) of a command set, Implicit VR Little Endian. */
function commandStatus(command: Buffer): number | undefined {
  let pos = 0;
  while (pos + 8 <= command.length) {
    const group = command.readUInt16LE(pos);
    const element = command.readUInt16LE(pos + 2);
    const length = command.readUInt32LE(pos + 4);
    if (group === 0x0000 && element === 0x0900 && length === 2) return command.readUInt16LE(pos + 8);
    pos += 8 + length;
  }
  return undefined;
}
