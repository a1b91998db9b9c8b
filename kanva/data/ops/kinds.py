"""Questions for the KB's fact kinds ("diet", "legs", "can_fly", ...), asked about an object pointed at by `ref`.

The KB stores facts as {kind: value}; each kind needs its own English. Kinds missing here get a generic
"What is the <kind> of <ref>?". Yes/no kinds (values "yes"/"no") are asked as yes/no questions, but only
when the KB has both values for the kind somewhere, so "no" answers exist too; a few categorical kinds also
get a yes/no form with a wrong value drawn from other categories ("Is the animal in the picture a herbivore?").
"""

from __future__ import annotations

import random

OPEN = {
    "accepts": "What does {ref} accept as payment?",
    "blows": "What does {ref} blow?",
    "body_covering": "What covers the body of {ref}?",
    "carried_in": "How is {ref} usually carried?",
    "carried_on": "Where is {ref} usually carried?",
    "carries": "What does {ref} carry?",
    "connects_to": "What does {ref} connect to?",
    "controlled_with": "What is {ref} controlled with?",
    "controls": "What does {ref} control?",
    "cooked_by": "How is {ref} usually cooked?",
    "diet": "What kind of diet does {ref} have?",
    "flies_with": "What makes {ref} fly?",
    "food_group": "Which food group does {ref} belong to?",
    "for_whom": "Who is {ref} mainly made for?",
    "grows": "Where does {ref} grow?",
    "grows_on": "What does {ref} grow on?",
    "heats_with": "What does {ref} heat food with?",
    "held_by": "What is {ref} held by?",
    "held_in": "What is {ref} held in?",
    "holds": "What does {ref} usually hold?",
    "legs": "How many legs does {ref} have?",
    "light_colors": "Which colors of light does {ref} show?",
    "location": "Where is {ref} usually located?",
    "material": "What is {ref} usually made of?",
    "natural_or_prepared": "Is {ref} a natural or a prepared food?",
    "needs": "What does {ref} need to live?",
    "powered_by": "What powers {ref}?",
    "protects_from": "What does {ref} protect from?",
    "room": "In which room is {ref} usually found?",
    "runs_on": "What does {ref} run on?",
    "seats": "What is the seating capacity of {ref}?",
    "shape": "What shape does {ref} usually have?",
    "shows": "What does {ref} show?",
    "sound": "What sound does {ref} make?",
    "sport": "Which sport is {ref} used for?",
    "taste": "How does {ref} usually taste?",
    "temperature": "What does {ref} do to food?",
    "text": "What word is usually written on {ref}?",
    "travels_on": "Does {ref} travel by land, water or air?",
    "typical_color": "What color is {ref} usually?",
    "used_by": "Who uses {ref}?",
    "used_on": "What surface is {ref} used on?",
    "used_with": "What is {ref} used with?",
    "utensil_type": "What type of utensil is {ref}?",
    "wheels": "How many wheels does {ref} have?",
    "wild_or_domestic": "Is {ref} a wild or a domestic animal?",
    "worn_on": "Where is {ref} worn?",
}

YES_NO = {  # kinds whose value is "yes" or "no"
    "alive": "Is {ref} alive?",
    "can_fly": "Can {ref} fly?",
    "input_device": "Is {ref} an input device?",
    "is_sharp": "Is {ref} sharp?",
    "lays_eggs": "Does {ref} lay eggs?",
    "portable": "Is {ref} portable?",
    "thrown": "Is {ref} meant to be thrown?",
    "uses_water": "Does {ref} use water?",
}

CLAIMS = {  # categorical kinds asked as "is it this value?" (the value is filled in as {value})
    "diet": "Is {ref} {a_value}?",
    "food_group": "Is {ref} {a_value}?",
    "wild_or_domestic": "Is {ref} a {value} animal?",
    "natural_or_prepared": "Is {ref} a {value} food?",
    "taste": "Does {ref} usually taste {value}?",
    "travels_on": "Does {ref} travel by {value}?",
    "sound": "Does {ref} make the sound \"{value}\"?",
}


# Second and third wordings of the kinds asked most often (the first is OPEN's / YES_NO's).
MORE_OPEN = {
    "diet": ("Is {ref} a herbivore, a carnivore or an omnivore?", "What sort of diet does {ref} follow?"),
    "legs": ("How many legs has {ref} got?",),
    "sound": ("What sound would you hear from {ref}?", "What noise does {ref} make?"),
    "material": ("What material is {ref} usually made from?",),
    "room": ("Which room of a house would {ref} usually be in?",),
    "typical_color": ("What color does {ref} usually have?",),
    "travels_on": ("Does {ref} move on land, on water or through the air?",),
    "food_group": ("What kind of food is {ref}?",),
    "wheels": ("How many wheels has {ref} got?",),
    "taste": ("What does {ref} usually taste like?",),
    "wild_or_domestic": ("Is {ref} a wild animal or a domestic one?",),
    "body_covering": ("What is the body of {ref} covered with?",),
    "powered_by": ("What makes {ref} run?",),
    "worn_on": ("On which part of the body is {ref} worn?",),
}
MORE_YES_NO = {
    "alive": ("Is {ref} a living thing?",),
    "can_fly": ("Is {ref} able to fly?", "Could {ref} fly?"),
    "lays_eggs": ("Does {ref} lay eggs to have young?",),
    "portable": ("Can {ref} be carried around easily?",),
    "is_sharp": ("Does {ref} have a sharp edge?",),
}


def open_question(kind: str, ref: str, rng: random.Random | None = None) -> str:
    first = OPEN.get(kind, "What is the " + kind.replace("_", " ") + " of {ref}?")
    options = (first, *MORE_OPEN.get(kind, ()))
    return (rng.choice(options) if rng is not None else first).format(ref=ref)


def yes_no_question(kind: str, ref: str, rng: random.Random) -> str:
    return rng.choice((YES_NO[kind], *MORE_YES_NO.get(kind, ()))).format(ref=ref)
