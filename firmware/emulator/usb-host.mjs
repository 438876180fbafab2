import {
  createSetupPacket,
  DataDirection,
  DescriptorType,
  SetupRecipient,
  SetupRequest,
  SetupType,
  USBCDC,
} from 'rp2040js';
import { ByteQueue } from './byte-queue.mjs';

/** USB DPRAM: EPn OUT buffer control is at 0x84 + 8n (device mode). */
const EP0_OUT_BUFFER_CONTROL = 0x84;
const BUFFER_AVAILABLE = 1 << 10;
/** Full-speed bulk and control packet size. */
const PACKET = 64;
/** Time for the host to put one OUT packet on the bus (rp2040js uses 10 us for its own). */
const OUT_PACKET_NANOS = 10_000;
/**
 * rp2040js never answers a control request the device rejects (it does not model STALL
 * handshakes), so a request without an answer in this much simulated time counts as stalled.
 */
const CONTROL_TIMEOUT_NANOS = 20_000_000;

const CDC_SET_CONTROL_LINE_STATE = 0x22;
const CDC_DTR = 1 << 0;
const CDC_RTS = 1 << 1;
const INTERFACE_CLASS_CDC = 0x02;
const INTERFACE_SUBCLASS_ACM = 0x02;
const LANGUAGE_EN_US = 0x0409;

/**
 * The USB host side of a CDC-ACM device, on rp2040js's USB controller model.
 *
 * rp2040js's USBCDC helper does the enumeration (bus reset, SET_ADDRESS, configuration
 * descriptor, SET_CONFIGURATION) and receives the bulk IN data. This class adds what Linux
 * does next and what the helper lacks or gets wrong for embassy-usb:
 *  - reads the device descriptor and the serial-number string descriptor;
 *  - raises DTR and RTS with SET_CONTROL_LINE_STATE addressed to the CDC communication
 *    interface, as cdc-acm does on open (the helper sends it to the device recipient with
 *    wIndex 0, which embassy-usb rejects);
 *  - feeds host-to-device data itself, working around the OUT endpoint bug below, from an
 *    unbounded queue (the helper's 512-byte FIFO drops what does not fit).
 *
 * `onEnumerated({ vid, pid, serial, dtr })` is called once all that is done (serial is null
 * if the descriptor could not be read, dtr false if the request was rejected);
 * `onData(bytes)` gets each bulk IN packet.
 */
export class CdcHost {
  #usb;
  #dpram;
  #cdc;
  #queue = new ByteQueue();
  #armed = new Set(); // OUT endpoints whose buffer the firmware has armed
  #inFlight = null; // the OUT packet on its way into the buffer
  #deliveryAlarm;
  #control = null; // the control transfer this class has in progress
  #controlTimeout;

  constructor(mcu, { onEnumerated, onData }) {
    const usb = mcu.usbCtrl;
    this.#usb = usb;
    this.#dpram = mcu.usbDPRAMView;
    this.#deliveryAlarm = mcu.clock.createAlarm(() => this.#deliver());
    this.#controlTimeout = mcu.clock.createAlarm(() => this.#finishControl(null));

    const cdc = new USBCDC(usb);
    this.#cdc = cdc;
    cdc.onSerialData = (bytes) => {
      if (bytes.length > 0) onData(bytes);
    };
    // USBCDC calls this once the configuration is set; take over from there.
    cdc.cdcSetControlLineState = () => {
      cdc.initialized = true;
      this.#identify(onEnumerated);
    };

    // Control transfers this class started are answered on EP0; everything else stays
    // with USBCDC's handler.
    const cdcOnEndpointWrite = usb.onEndpointWrite;
    usb.onEndpointWrite = (endpoint, buffer) => {
      if (endpoint === 0 && this.#control) this.#onControlPacket(buffer);
      else cdcOnEndpointWrite(endpoint, buffer);
    };

    // rp2040js bug: when the firmware arms an OUT buffer (writes AVAILABLE), the model clears
    // AVAILABLE at once, before any data arrives. embassy-rp waits for AVAILABLE to clear, so
    // it reads the stale buffer as a full 64-byte packet, and its read never pends (before
    // enumeration that starves every other task). Here AVAILABLE is set again and cleared
    // only when a packet has really been written into the buffer (#deliver). This holds for
    // every OUT endpoint, including those armed before the host knows which one is the CDC
    // data endpoint; EP0 OUT arms are status stages, which nobody waits on.
    usb.onEndpointRead = (endpoint) => {
      if (endpoint === 0) return;
      const control = EP0_OUT_BUFFER_CONTROL + endpoint * 8;
      this.#dpram.setUint32(control, this.#dpram.getUint32(control, true) | BUFFER_AVAILABLE, true);
      this.#armed.add(endpoint);
      this.#pump();
    };
  }

  /** Queues bytes for the device (they go out in 64-byte packets as it arms its buffer). */
  send(bytes) {
    this.#queue.push(bytes);
    this.#pump();
  }

  #pump() {
    const endpoint = this.#cdc.outEndpoint;
    if (!this.#armed.has(endpoint) || this.#inFlight || this.#queue.length === 0) return;
    this.#armed.delete(endpoint);
    this.#inFlight = this.#queue.take(PACKET);
    this.#deliveryAlarm.schedule(OUT_PACKET_NANOS);
  }

  #deliver() {
    const endpoint = this.#cdc.outEndpoint;
    const control = EP0_OUT_BUFFER_CONTROL + endpoint * 8;
    this.#dpram.setUint32(control, this.#dpram.getUint32(control, true) & ~BUFFER_AVAILABLE, true);
    const packet = this.#inFlight;
    this.#inFlight = null;
    this.#usb.finishRead(endpoint, packet); // copies it, sets FULL and the length, raises BUFF_STATUS
  }

  /** Device descriptor, serial-number string, then DTR: what a Linux host does after configuring. */
  #identify(onEnumerated) {
    const communicationInterface = findInterface(this.#cdc.descriptors, INTERFACE_CLASS_CDC, INTERFACE_SUBCLASS_ACM);
    this.#request(getDescriptor(DescriptorType.Device, 0, 0, 18), (device) => {
      const valid = device !== null && device.length >= 18;
      const vid = valid ? device[8] | (device[9] << 8) : null;
      const pid = valid ? device[10] | (device[11] << 8) : null;
      const serialIndex = valid ? device[16] : 0;
      const raiseDtr = (serial) => {
        this.#request(setControlLineState(CDC_DTR | CDC_RTS, communicationInterface), (ack) => {
          onEnumerated({ vid, pid, serial, dtr: ack !== null });
          this.#pump();
        });
      };
      if (serialIndex === 0) {
        raiseDtr(null);
        return;
      }
      this.#request(getDescriptor(DescriptorType.String, 0, 0, 255), (languages) => {
        const language = languages?.length >= 4 ? languages[2] | (languages[3] << 8) : LANGUAGE_EN_US;
        this.#request(getDescriptor(DescriptorType.String, serialIndex, language, 255), (string) => {
          raiseDtr(string ? decodeString(string) : null);
        });
      });
    });
  }

  /** Starts a control transfer; `done` gets the IN data (empty for OUT), or null if stalled. */
  #request(setup, done) {
    const deviceToHost = (setup[0] & 0x80) !== 0;
    const length = setup[6] | (setup[7] << 8);
    this.#control = { deviceToHost, length, data: [], done };
    this.#controlTimeout.schedule(CONTROL_TIMEOUT_NANOS);
    this.#usb.sendSetupPacket(setup);
  }

  #onControlPacket(packet) {
    const control = this.#control;
    if (control.deviceToHost) {
      control.data.push(...packet);
      // A full packet with more requested means more packets follow.
      if (packet.length === PACKET && control.data.length < control.length) return;
    }
    // For an OUT request without data, the device's empty IN packet is the status stage.
    this.#finishControl(Uint8Array.from(control.data));
  }

  #finishControl(result) {
    const control = this.#control;
    this.#controlTimeout.cancel();
    this.#control = null;
    control.done(result);
  }
}

function getDescriptor(type, index, language, length) {
  return createSetupPacket({
    dataDirection: DataDirection.DeviceToHost,
    type: SetupType.Standard,
    recipient: SetupRecipient.Device,
    bRequest: SetupRequest.GetDescriptor,
    wValue: (type << 8) | index,
    wIndex: language,
    wLength: length,
  });
}

function setControlLineState(lines, interfaceNumber) {
  return createSetupPacket({
    dataDirection: DataDirection.HostToDevice,
    type: SetupType.Class,
    recipient: SetupRecipient.Interface,
    bRequest: CDC_SET_CONTROL_LINE_STATE,
    wValue: lines,
    wIndex: interfaceNumber,
    wLength: 0,
  });
}

/** The number of the first interface of this class and subclass in a configuration descriptor. */
function findInterface(descriptors, interfaceClass, subclass) {
  for (let i = 0; i + 1 < descriptors.length && descriptors[i] >= 2; i += descriptors[i]) {
    const isInterface = descriptors[i + 1] === DescriptorType.Interface && descriptors[i] >= 9;
    if (isInterface && descriptors[i + 5] === interfaceClass && descriptors[i + 6] === subclass) {
      return descriptors[i + 2];
    }
  }
  return 0;
}

/** A string descriptor's UTF-16LE text. */
function decodeString(descriptor) {
  const end = Math.min(descriptor[0], descriptor.length);
  return Buffer.from(descriptor.subarray(2, end)).toString('utf16le');
}
