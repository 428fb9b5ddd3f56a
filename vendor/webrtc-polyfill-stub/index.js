// imgdist never uses WebRTC; these are whatever the runtime has (undefined on Node 20).
export const RTCPeerConnection = globalThis.RTCPeerConnection
export const RTCSessionDescription = globalThis.RTCSessionDescription
export const RTCIceCandidate = globalThis.RTCIceCandidate
export const RTCDataChannel = globalThis.RTCDataChannel
export const MediaStream = globalThis.MediaStream
export const MediaStreamTrack = globalThis.MediaStreamTrack
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate, RTCDataChannel, MediaStream, MediaStreamTrack }
