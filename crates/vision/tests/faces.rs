//! Face detection on real photographs.

mod common;

use genq_vision::{detect_faces, FaceBox};

fn centre(face: &FaceBox) -> (u32, u32) {
    (face.x + face.width / 2, face.y + face.height / 2)
}

#[test]
fn the_astronaut_has_one_face_where_her_face_is() {
    let grey = common::astronaut().to_luma8();
    let faces = detect_faces(&grey);
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = faces[0];
    // Her face spans about x 175–275, y 60–190 of the 512×512 portrait:
    // the box's centre is in the upper half, between her eyes and mouth.
    let (cx, cy) = centre(&face);
    assert!(
        (190..=260).contains(&cx) && (90..=150).contains(&cy),
        "{face:?}"
    );
    assert!(
        (70..=150).contains(&face.width) && face.width == face.height,
        "{face:?}"
    );
    assert!(face.score >= 2.0, "{face:?}");
}

#[test]
fn the_coffee_cup_has_no_face() {
    assert_eq!(detect_faces(&common::coffee().to_luma8()), vec![]);
}

#[test]
fn boxes_are_in_the_pixels_of_the_image_given() {
    // 1536×1536 is searched at 640 px: the box comes back three times the
    // size of the original's and in the same place.
    let small = detect_faces(&common::astronaut().to_luma8());
    let large = detect_faces(
        &common::astronaut()
            .resize_exact(1536, 1536, image::imageops::Triangle)
            .to_luma8(),
    );
    assert_eq!(large.len(), 1, "{large:?}");
    let ((sx, sy), (lx, ly)) = (centre(&small[0]), centre(&large[0]));
    assert!(
        lx.abs_diff(sx * 3) <= 24 && ly.abs_diff(sy * 3) <= 24,
        "{small:?} {large:?}"
    );
    assert!(
        large[0].width.abs_diff(small[0].width * 3) <= 45,
        "{small:?} {large:?}"
    );
    assert!(large[0].x + large[0].width <= 1536 && large[0].y + large[0].height <= 1536);
}

#[test]
fn pictures_too_small_for_a_face_have_none() {
    assert_eq!(detect_faces(&image::GrayImage::new(30, 200)), vec![]);
    assert_eq!(detect_faces(&image::GrayImage::new(1, 1)), vec![]);
}
