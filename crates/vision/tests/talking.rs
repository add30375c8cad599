//! The built-in talking head on a real portrait.

mod common;

use genq_vision::{detect_faces, openness_envelope, Rect, TalkingHead};

fn head() -> (image::RgbImage, TalkingHead) {
    let avatar = common::astronaut().to_rgb8();
    let head = TalkingHead::new(avatar.clone()).expect("the astronaut has a face");
    (avatar, head)
}

fn frame(head: &TalkingHead, openness: f32, t: f32) -> Vec<u8> {
    let r = head.moving_region();
    let mut out = vec![0; (r.width * r.height * 3) as usize];
    head.frame(openness, t, &mut out);
    out
}

/// The avatar's pixels inside `r`, as `frame` writes them.
fn crop(avatar: &image::RgbImage, r: Rect) -> Vec<u8> {
    image::imageops::crop_imm(avatar, r.x, r.y, r.width, r.height)
        .to_image()
        .into_raw()
}

#[test]
fn the_moving_region_is_the_face_and_little_else() {
    let (avatar, head) = head();
    let face = detect_faces(&common::astronaut().to_luma8())[0];
    let r = head.moving_region();
    assert!(
        [r.x, r.y, r.width, r.height].iter().all(|v| v % 2 == 0),
        "{r:?}"
    );
    // Within the face box grown by half its size each way; a small part of
    // the picture.
    let half = face.width / 2;
    assert!(
        r.x + half >= face.x && r.y + half >= face.y,
        "{r:?} {face:?}"
    );
    assert!(
        r.x + r.width <= face.x + face.width + half,
        "{r:?} {face:?}"
    );
    assert!(
        r.y + r.height <= face.y + face.height + half,
        "{r:?} {face:?}"
    );
    assert!(
        r.x <= face.x && r.y <= face.y && r.x + r.width >= face.x + face.width,
        "{r:?} {face:?}"
    );
    assert!(
        u64::from(r.width * r.height) * 8 < u64::from(avatar.width() * avatar.height()),
        "{r:?}"
    );
}

#[test]
fn silence_at_the_start_is_the_picture_itself() {
    let (avatar, head) = head();
    assert_eq!(frame(&head, 0.0, 0.0), crop(&avatar, head.moving_region()));
}

#[test]
fn an_open_mouth_changes_the_mouth_and_only_around_it() {
    let (_, head) = head();
    let r = head.moving_region();
    let face = detect_faces(&common::astronaut().to_luma8())[0];
    let (closed, open) = (frame(&head, 0.0, 0.0), frame(&head, 1.0, 0.0));
    // Differences by where they are: inside the mouth (x 0.3–0.7, y 0.75–
    // 0.95 of the face box) and above the nose (y < 0.6).
    let (mut mouth, mut mouth_dark, mut mouth_pixels, mut upper) = (0u64, 0, 0, 0u64);
    for y in 0..r.height {
        for x in 0..r.width {
            let i = ((y * r.width + x) * 3) as usize;
            let diff: u64 = (0..3)
                .map(|c| u64::from(closed[i + c].abs_diff(open[i + c])))
                .sum();
            let (fx, fy) = (
                (r.x + x) as f32 / face.width as f32 - face.x as f32 / face.width as f32,
                (r.y + y) as f32 / face.height as f32 - face.y as f32 / face.height as f32,
            );
            if (0.3..0.7).contains(&fx) && (0.75..0.95).contains(&fy) {
                mouth += diff;
                mouth_pixels += 1;
                mouth_dark += u64::from(open[i..i + 3].iter().all(|&v| v < 80) as u8);
            } else if fy < 0.6 {
                upper += diff;
            }
        }
    }
    assert!(
        mouth / mouth_pixels > 40,
        "mean change in the mouth {}",
        mouth / mouth_pixels
    );
    assert!(
        mouth_dark * 20 > mouth_pixels,
        "{mouth_dark} of {mouth_pixels} mouth pixels are dark"
    );
    assert_eq!(upper, 0, "the jaw moved the eyes");
}

#[test]
fn the_region_border_never_changes() {
    let (avatar, head) = head();
    let r = head.moving_region();
    let source = crop(&avatar, r);
    let (w, h) = (r.width as usize, r.height as usize);
    let border = |x: usize, y: usize| x == 0 || y == 0 || x == w - 1 || y == h - 1;
    let mut swayed = false;
    for (openness, t) in [
        (1.0, 0.0),
        (0.0, 0.925),
        (1.0, 0.925),
        (0.5, 2.3),
        (0.8, 7.1),
    ] {
        let out = frame(&head, openness, t);
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                if border(x, y) {
                    assert_eq!(out[i..i + 3], source[i..i + 3], "({x}, {y}) at t {t}");
                }
            }
        }
        swayed |= openness == 0.0 && out != source;
    }
    assert!(swayed, "the head never moved");
}

#[test]
fn the_head_sways_subtly() {
    let (avatar, head) = head();
    let source = crop(&avatar, head.moving_region());
    // At the roll's peak, no pixel moves far enough to change much.
    let out = frame(&head, 0.0, 0.925);
    let mean: f64 = out
        .iter()
        .zip(&source)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / out.len() as f64;
    assert!(mean > 0.2 && mean < 8.0, "mean change {mean}");
}

#[test]
fn a_picture_without_a_face_is_refused() {
    let err = TalkingHead::new(common::coffee().to_rgb8())
        .err()
        .expect("the cup has no face");
    assert_eq!(err, "no face was found in the picture");
}

#[test]
fn the_mouth_opens_with_the_voice_and_closes_in_silence() {
    let rate = 16_000;
    let mut samples = vec![0.0f32; rate as usize];
    samples.extend(
        (0..rate).map(|i| 0.3 * (std::f32::consts::TAU * 220.0 * i as f32 / rate as f32).sin()),
    );
    let envelope = openness_envelope(&samples, rate, 25.0);
    assert_eq!(envelope.len(), 50);
    assert!(envelope[..25].iter().all(|&v| v == 0.0), "{envelope:?}");
    // Open within two frames of the tone's start, and wide.
    assert!(envelope[27..].iter().all(|&v| v > 0.9), "{envelope:?}");
    assert!(envelope.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn the_envelope_of_nothing_is_closed() {
    assert_eq!(openness_envelope(&[], 16_000, 25.0), Vec::<f32>::new());
    assert_eq!(
        openness_envelope(&[0.0; 16_000], 16_000, 25.0),
        vec![0.0; 25]
    );
    // Hiss below the noise floor is silence too.
    let hiss: Vec<f32> = (0..16_000)
        .map(|i| if i % 2 == 0 { 0.002 } else { -0.002 })
        .collect();
    assert_eq!(openness_envelope(&hiss, 16_000, 25.0), vec![0.0; 25]);
    assert_eq!(openness_envelope(&hiss, 0, 25.0), Vec::<f32>::new());
}
