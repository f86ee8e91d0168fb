// This device's camera: opening it (with one clear sentence for each way that fails), the frozen
// frame while paused, and the frames as the server wants them.

const JPEG_QUALITY = 0.85;

export class Camera {
  constructor() {
    this.video = null; // the playing <video>, once started
    this.frozen = null; // a canvas holding the picture at the pause
    this.error = null; // why the camera is not on: "insecure", "unsupported" or the error's name
    this.encoder = null; // the canvas frames are shrunk on
  }

  get ready() {
    return Boolean(this.video && this.video.readyState >= 2);
  }

  // Resolves to null when started, else to the sentence that says why not (the caller shows it).
  // alt: what the page does instead, added to the sentence.
  async start(alt = "") {
    if (this.video) return null;
    if (!window.isSecureContext) {
      this.error = "insecure";
      return "insecure";
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.error = "unsupported";
      return "This browser offers no camera access (no getUserMedia); use a current Chrome, Firefox or Safari.";
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      const video = document.createElement("video");
      video.muted = true;
      video.playsInline = true;
      video.srcObject = stream;
      await video.play();
      this.video = video;
      this.error = null;
      return null;
    } catch (err) {
      this.error = err.name || "error";
      if (err.name === "NotAllowedError" || err.name === "SecurityError") {
        return `The camera was refused. Allow it for this site (the camera icon in the address bar) and reload the page.${alt}`;
      } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
        return `No camera was found on this device. Plug one in and reload the page.${alt}`;
      } else if (err.name === "NotReadableError") {
        return `The camera is busy: another program or tab uses it. Close that and reload the page.${alt}`;
      }
      return `The camera could not be opened (${err.name}: ${err.message}).${alt}`;
    }
  }

  // Keeps the current picture: the heat, opacity and colormap can still change over it.
  freeze() {
    if (!this.ready) return;
    const frozen = document.createElement("canvas");
    frozen.width = this.video.videoWidth;
    frozen.height = this.video.videoHeight;
    frozen.getContext("2d").drawImage(this.video, 0, 0);
    this.frozen = frozen;
  }

  // The picture to show: the frozen one while paused, else the live one; null before the first frame.
  picture(paused) {
    if (paused && this.frozen) return this.frozen;
    return this.ready ? this.video : null;
  }

  // A promise of the JPEG of `picture`. The engine shrinks every frame to the model's input
  // ([height, width]) anyway: sending no more than that keeps the encoding here, the upload and
  // the decoding on the server small.
  encode(picture, inputSize) {
    const [width, height] = [picture.videoWidth || picture.width, picture.videoHeight || picture.height];
    const [inputH, inputW] = inputSize || [height, width];
    const scale = Math.min(1, Math.max(inputH / height, inputW / width));
    const canvas = (this.encoder ||= document.createElement("canvas"));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.getContext("2d").drawImage(picture, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  }
}
