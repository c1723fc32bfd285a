"""Docker-style generated container names: ``adjective_surname`` (after moby's pkg/namesgenerator)."""

import random

_LEFT = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful", "blissful",
    "bold", "brave", "busy", "charming", "clever", "compassionate", "competent", "condescending", "confident",
    "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic",
    "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused", "friendly",
    "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore", "heuristic",
    "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen",
    "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous",
    "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical",
    "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting",
    "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful",
    "zealous", "zen",
)

_RIGHT = (
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik", "bell", "bhabha",
    "bohr", "booth", "borg", "bose", "brattain", "brown", "carson", "cerf", "chandrasekhar", "clarke", "curie",
    "darwin", "dijkstra", "easley", "einstein", "elion", "engelbart", "euclid", "euler", "fermat", "fermi",
    "feynman", "franklin", "galileo", "gauss", "goldberg", "goodall", "hamilton", "hawking", "heisenberg",
    "hermann", "hodgkin", "hopper", "hypatia", "jackson", "jang", "jennings", "johnson", "kalam", "kapitsa",
    "keller", "kepler", "khorana", "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "lederberg",
    "lovelace", "lumiere", "mahavira", "mayer", "mccarthy", "mclean", "meitner", "mendel", "merkle", "mirzakhani",
    "montalcini", "moore", "morse", "napier", "nash", "newton", "nobel", "noether", "pare", "pascal", "pasteur",
    "payne", "perlman", "pike", "poincare", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "rosalind",
    "sammet", "shannon", "shaw", "shockley", "sinoussi", "stonebraker", "swanson", "tesla", "thompson",
    "torvalds", "turing", "varahamihira", "villani", "wescoff", "wiles", "williams", "wilson", "wing", "wozniak",
    "wright", "yalow", "yonath",
)


def random_name(retry=0, rng=random):
    """Return a random ``adjective_surname``; on a retry, append a digit as Docker does."""
    name = "{}_{}".format(rng.choice(_LEFT), rng.choice(_RIGHT))
    if retry > 0:
        name += str(rng.randint(0, 9))
    return name
