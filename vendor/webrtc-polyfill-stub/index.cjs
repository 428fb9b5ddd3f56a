// imgdist never uses WebRTC; these are whatever the runtime has (undefined on Node 20).
module.exports = {
  RTCPeerConnection: globalThis.RTCPeerConnection,
  RTCSessionDescription: globalThis.RTCSessionDescription,
  RTCIceCandidate: globalThis.RTCIceCandidate,
  RTCDataChannel: globalThis.RTCDataChannel,
  MediaStream: globalThis.MediaStream,
  MediaStreamTrack: globalThis.MediaStreamTrack
}
