# The serving client: the embedding of ./data/00000000.jpg.  argv: server address.
import json
import sys

from face_service import FaceService


def test(server):
    with open('./data/00000000.jpg', 'rb') as f:
        image = f.read()
    bc = FaceService()
    bc.connect(server)
    result = bc.encode([image])
    print(json.dumps(result[0]))
    bc.close()


if __name__ == '__main__':
    test(sys.argv[1])
