//! The MP4 writer: H.264 (libx264) in yuv420p, tagged BT.709 limited range,
//! and AAC audio from a music track, looped and faded; `+faststart` moves
//! the index to the front so that a phone can start playing at once.
//!
//! Everything libav lives on the thread that made the [`Mp4Writer`].

use std::{collections::VecDeque, io::Cursor, path::Path};

use ffmpeg::{
    codec, encoder,
    format::{self, context::StreamIo, sample::Type as SampleType, Pixel, Sample},
    frame, media,
    software::resampling,
    util::{channel_layout::ChannelLayout, color},
    Dictionary, Packet, Rational,
};
use ffmpeg_next as ffmpeg;

use super::{plan::X264, raster::Yuv};

/// Audio is encoded at 48 kHz stereo.
const RATE: u32 = 48_000;
/// Seconds of fade-in at the start and fade-out at the end.
const FADE_IN: f64 = 0.5;
const FADE_OUT: f64 = 2.5;
/// How far the audio trails the video, in seconds: longer than the end card,
/// so the film's length is known before the fade-out is written.
const AUDIO_LAG: f64 = 5.0;

pub type Error = String;

fn err(context: &str) -> impl Fn(ffmpeg::Error) -> Error + '_ {
    move |e| format!("{context}: {e}")
}

/// Initialises libav once per process; quiet unless something is wrong.
pub fn init() -> Result<(), Error> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| format!("cannot initialise libav: {e}"))?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        Ok(())
    })
    .clone()
}

struct AudioTrack {
    encoder: encoder::Audio,
    stream: usize,
    music: Music,
    frame_size: usize,
    /// Samples (per channel) encoded so far.
    written: u64,
}

/// Writes one film.
pub struct Mp4Writer {
    output: format::context::Output,
    video: encoder::Video,
    video_stream: usize,
    video_time_base: Rational,
    frame: frame::Video,
    audio: Option<AudioTrack>,
    fps: u32,
    /// Known once the end card is under way.
    total_frames: Option<u64>,
}

impl Mp4Writer {
    /// Opens `path` for a `width`×`height` film at `fps`, with music decoded
    /// from `music` (an audio file's bytes) if given.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        x264: &X264,
        music: Option<&'static [u8]>,
    ) -> Result<Mp4Writer, Error> {
        init()?;
        let mut output = format::output_as(path, "mp4").map_err(err("cannot create the MP4 file"))?;
        let global_header = output.format().flags().contains(format::Flags::GLOBAL_HEADER);

        let h264 = encoder::find_by_name("libx264")
            .ok_or("libav has no libx264 encoder; install libavcodec with x264 (Debian's libavcodec59)")?;
        let mut video =
            codec::context::Context::new_with_codec(h264).encoder().video().map_err(err("cannot set up H.264"))?;
        video.set_width(width);
        video.set_height(height);
        video.set_format(Pixel::YUV420P);
        video.set_time_base(Rational::new(1, fps as i32));
        video.set_frame_rate(Some(Rational::new(fps as i32, 1)));
        video.set_gop(x264.gop);
        video.set_colorspace(color::Space::BT709);
        video.set_color_range(color::Range::MPEG);
        video.set_color_primaries(color::Primaries::BT709);
        video.set_color_transfer_characteristic(color::TransferCharacteristic::BT709);
        if global_header {
            video.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut options = Dictionary::new();
        options.set("preset", &x264.preset);
        options.set("crf", &x264.crf.to_string());
        if let Some(tune) = &x264.tune {
            options.set("tune", tune);
        }
        options.set("threads", &x264.threads.to_string());
        if let Some(params) = &x264.params {
            options.set("x264-params", params);
        }
        let video = video.open_with(options).map_err(err("cannot open the H.264 encoder"))?;
        let video_stream = {
            let mut stream = output.add_stream(h264).map_err(err("cannot add the video stream"))?;
            stream.set_parameters(&video);
            stream.set_time_base(Rational::new(1, fps as i32));
            stream.set_avg_frame_rate(Rational::new(fps as i32, 1));
            stream.index()
        };

        let audio = match music {
            Some(bytes) => Some(AudioTrack::new(&mut output, global_header, bytes)?),
            None => None,
        };

        let mut header = Dictionary::new();
        header.set("movflags", "+faststart");
        output.write_header_with(header).map_err(err("cannot write the MP4 header"))?;
        let frame = frame::Video::new(Pixel::YUV420P, width, height);
        Ok(Mp4Writer {
            output,
            video,
            video_stream,
            video_time_base: Rational::new(1, fps as i32),
            frame,
            audio,
            fps,
            total_frames: None,
        })
    }

    /// The film will be `frames` long: the audio fades out to end with it.
    pub fn set_total_frames(&mut self, frames: u64) {
        self.total_frames = Some(frames);
    }

    /// Encodes `yuv` as frame number `index`.
    pub fn push(&mut self, yuv: &Yuv, index: u64) -> Result<(), Error> {
        // The encoder may still hold a reference to the last frame's buffer:
        // write into a buffer of our own.
        // SAFETY: the frame was allocated by `frame::Video::new` and is owned
        // here; av_frame_make_writable only reallocates its buffers.
        let made = unsafe { ffmpeg::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
        if made < 0 {
            return Err(format!("cannot allocate a video frame: {}", ffmpeg::Error::from(made)));
        }
        copy_into(yuv, &mut self.frame);
        self.frame.set_pts(Some(index as i64));
        self.video.send_frame(&self.frame).map_err(err("cannot encode a frame"))?;
        self.drain_video()?;
        let seconds = (index + 1) as f64 / f64::from(self.fps);
        self.write_audio_until(seconds - AUDIO_LAG)
    }

    fn drain_video(&mut self) -> Result<(), Error> {
        let mut packet = Packet::empty();
        while next_packet(self.video.receive_packet(&mut packet), "video")? {
            // Every frame lasts one frame: the last one too, in the MP4.
            if packet.duration() == 0 {
                packet.set_duration(1);
            }
            packet.set_stream(self.video_stream);
            let stream_tb = self.stream_time_base(self.video_stream)?;
            packet.rescale_ts(self.video_time_base, stream_tb);
            packet.write_interleaved(&mut self.output).map_err(err("cannot write video"))?;
        }
        Ok(())
    }

    fn stream_time_base(&self, index: usize) -> Result<Rational, Error> {
        self.output.stream(index).map(|s| s.time_base()).ok_or_else(|| "a stream disappeared".to_owned())
    }

    fn write_audio_until(&mut self, seconds: f64) -> Result<(), Error> {
        let Some(audio) = self.audio.as_mut() else { return Ok(()) };
        let total = self.total_frames.map(|frames| frames as f64 / f64::from(self.fps));
        let until = (seconds.max(0.0) * f64::from(RATE)) as u64;
        while audio.written + audio.frame_size as u64 <= until {
            let stream_tb =
                self.output.stream(audio.stream).map(|s| s.time_base()).ok_or("the audio stream disappeared")?;
            audio.encode_frame(audio.frame_size, total, &mut self.output, stream_tb)?;
        }
        Ok(())
    }

    /// Flushes both encoders and writes the index. The file is complete only
    /// once this returns.
    pub fn finish(mut self, frames: u64) -> Result<(), Error> {
        self.total_frames = Some(frames);
        self.video.send_eof().map_err(err("cannot finish the video"))?;
        self.drain_video()?;
        let seconds = frames as f64 / f64::from(self.fps);
        if let Some(mut audio) = self.audio.take() {
            let stream_tb = self.stream_time_base(audio.stream)?;
            let end = (seconds * f64::from(RATE)).round() as u64;
            while audio.written < end {
                let samples = (end - audio.written).min(audio.frame_size as u64) as usize;
                audio.encode_frame(samples, Some(seconds), &mut self.output, stream_tb)?;
            }
            audio.finish(&mut self.output, stream_tb)?;
        }
        self.output.write_trailer().map_err(err("cannot finish the MP4 file"))
    }
}

/// Whether `received` holds a packet: the encoder's "not now" (EAGAIN) and
/// "no more" (EOF) end a drain; any other error is the encoder failing.
fn next_packet(received: Result<(), ffmpeg::Error>, what: &str) -> Result<bool, Error> {
    match received {
        Ok(()) => Ok(true),
        Err(ffmpeg::Error::Eof) => Ok(false),
        Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(false),
        Err(err) => Err(format!("the {what} encoder failed: {err}")),
    }
}

/// Copies a frame row by row: libav pads each row of its buffers (a
/// 1080-wide plane has a stride of 1088 or more), ours are packed.
pub fn copy_into(yuv: &Yuv, frame: &mut frame::Video) {
    for (index, plane) in [&yuv.y, &yuv.u, &yuv.v].into_iter().enumerate() {
        let stride = frame.stride(index);
        let data = frame.data_mut(index);
        for (y, row) in plane.data.chunks_exact(plane.width).enumerate() {
            data[y * stride..y * stride + plane.width].copy_from_slice(row);
        }
    }
}

impl AudioTrack {
    fn new(
        output: &mut format::context::Output,
        global_header: bool,
        music: &'static [u8],
    ) -> Result<AudioTrack, Error> {
        let aac = encoder::find(codec::Id::AAC).ok_or("libav has no AAC encoder")?;
        let mut audio =
            codec::context::Context::new_with_codec(aac).encoder().audio().map_err(err("cannot set up AAC"))?;
        audio.set_rate(RATE as i32);
        audio.set_channel_layout(ChannelLayout::STEREO);
        audio.set_channels(2);
        audio.set_format(Sample::F32(SampleType::Planar));
        audio.set_bit_rate(160_000);
        audio.set_time_base(Rational::new(1, RATE as i32));
        if global_header {
            audio.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = audio.open_as(aac).map_err(err("cannot open the AAC encoder"))?;
        let frame_size = (encoder.frame_size() as usize).max(1);
        let stream = {
            let mut stream = output.add_stream(aac).map_err(err("cannot add the audio stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(Rational::new(1, RATE as i32));
            stream.index()
        };
        Ok(AudioTrack { encoder, stream, music: Music::open(music)?, frame_size, written: 0 })
    }

    /// Encodes the next `samples` samples of music, with the fade-in and,
    /// once the film's `total` length is known, the fade-out.
    fn encode_frame(
        &mut self,
        samples: usize,
        total: Option<f64>,
        output: &mut format::context::Output,
        stream_tb: Rational,
    ) -> Result<(), Error> {
        let pcm = self.music.take(samples)?;
        let mut frame = frame::Audio::new(Sample::F32(SampleType::Planar), samples, ChannelLayout::STEREO);
        frame.set_rate(RATE);
        for channel in 0..2 {
            let plane = frame.plane_mut::<f32>(channel);
            for (i, out) in plane.iter_mut().enumerate().take(samples) {
                let t = (self.written + i as u64) as f64 / f64::from(RATE);
                let mut gain = (t / FADE_IN).min(1.0);
                if let Some(total) = total {
                    gain *= ((total - t) / FADE_OUT).clamp(0.0, 1.0);
                }
                *out = pcm[i * 2 + channel] * gain as f32;
            }
        }
        frame.set_pts(Some(self.written as i64));
        self.written += samples as u64;
        self.encoder.send_frame(&frame).map_err(err("cannot encode audio"))?;
        self.drain(output, stream_tb)
    }

    fn drain(&mut self, output: &mut format::context::Output, stream_tb: Rational) -> Result<(), Error> {
        let mut packet = Packet::empty();
        while next_packet(self.encoder.receive_packet(&mut packet), "audio")? {
            packet.set_stream(self.stream);
            packet.rescale_ts(Rational::new(1, RATE as i32), stream_tb);
            packet.write_interleaved(output).map_err(err("cannot write audio"))?;
        }
        Ok(())
    }

    fn finish(&mut self, output: &mut format::context::Output, stream_tb: Rational) -> Result<(), Error> {
        self.encoder.send_eof().map_err(err("cannot finish the audio"))?;
        self.drain(output, stream_tb)
    }
}

/// A music track decoded as it is needed, resampled to 48 kHz stereo
/// float, and looped.
struct Music {
    input: format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Audio,
    resampler: resampling::Context,
    /// Interleaved stereo samples decoded and not yet used.
    pending: VecDeque<f32>,
    /// Samples produced since the track last started, to catch a track that
    /// yields nothing and would loop for ever.
    since_loop: u64,
}

impl Music {
    fn open(bytes: &'static [u8]) -> Result<Music, Error> {
        let io = StreamIo::from_read_seek(Cursor::new(bytes)).map_err(err("cannot read the music"))?;
        let input = format::input_from_stream(io, None, None).map_err(err("cannot open the music"))?;
        let track = input.streams().best(media::Type::Audio).ok_or("the music file has no audio")?;
        let stream = track.index();
        let decoder = codec::context::Context::from_parameters(track.parameters())
            .and_then(|c| c.decoder().audio())
            .map_err(err("cannot decode the music"))?;
        let layout = if decoder.channel_layout().is_empty() {
            ChannelLayout::default(i32::from(decoder.channels()))
        } else {
            decoder.channel_layout()
        };
        let resampler = resampling::Context::get(
            decoder.format(),
            layout,
            decoder.rate(),
            Sample::F32(SampleType::Packed),
            ChannelLayout::STEREO,
            RATE,
        )
        .map_err(err("cannot resample the music"))?;
        Ok(Music { input, stream, decoder, resampler, pending: VecDeque::new(), since_loop: 0 })
    }

    /// The next `samples` stereo samples, interleaved.
    fn take(&mut self, samples: usize) -> Result<Vec<f32>, Error> {
        while self.pending.len() < samples * 2 {
            self.decode_more()?;
        }
        Ok(self.pending.drain(..samples * 2).collect())
    }

    fn decode_more(&mut self) -> Result<(), Error> {
        let mut decoded = frame::Audio::empty();
        loop {
            if self.decoder.receive_frame(&mut decoded).is_ok() {
                // Decoders that leave the layout unset.
                if decoded.channel_layout().is_empty() {
                    decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
                }
                // Room for every sample the resampler can give back for this
                // frame, so none pile up inside it when the rates differ.
                let capacity =
                    (decoded.samples() as u64 * u64::from(RATE)).div_ceil(u64::from(decoded.rate().max(1))) + 256;
                let mut resampled =
                    frame::Audio::new(Sample::F32(SampleType::Packed), capacity as usize, ChannelLayout::STEREO);
                self.resampler.run(&decoded, &mut resampled).map_err(err("cannot resample the music"))?;
                let count = resampled.samples() * 2;
                let bytes = resampled.data(0);
                self.pending
                    .extend(bytes.chunks_exact(4).take(count).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])));
                self.since_loop += count as u64;
                return Ok(());
            }
            match self.input.packets().next() {
                Some((stream, packet)) => {
                    if stream.index() == self.stream {
                        // A damaged packet is skipped, not fatal.
                        let _ = self.decoder.send_packet(&packet);
                    }
                }
                None => {
                    if self.since_loop == 0 {
                        return Err("the music track decodes to no sound".to_owned());
                    }
                    // The end of the track: loop.
                    self.since_loop = 0;
                    self.input.seek(0, ..).map_err(err("cannot loop the music"))?;
                    self.decoder.flush();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::raster::YuvColor;

    #[test]
    fn rows_land_at_the_frames_stride_not_the_planes_width() {
        init().unwrap();
        let mut frame = frame::Video::new(Pixel::YUV420P, 1080, 1920);
        assert!(frame.stride(0) > 1080, "libav pads 1080-wide rows (stride {})", frame.stride(0));
        let mut yuv = Yuv::filled(1080, 1920, YuvColor::BLACK);
        for (i, p) in yuv.y.data.iter_mut().enumerate() {
            *p = (i % 1080 % 200) as u8 + (i / 1080 % 7) as u8;
        }
        copy_into(&yuv, &mut frame);
        let stride = frame.stride(0);
        for y in [0, 1, 959, 1919] {
            assert_eq!(&frame.data(0)[y * stride..y * stride + 1080], yuv.y.row(y));
        }
        let chroma = frame.stride(1);
        assert_eq!(&frame.data(1)[959 * chroma..959 * chroma + 540], yuv.u.row(959));
    }
}
